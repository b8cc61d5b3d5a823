// The simulator page: send each message as a test patient (the staff member's own unless a card number
// is given) and show the bot's replies and whom they were sent as.
(function () {
  "use strict";

  var form = document.getElementById("simulator-form");
  var transcript = document.getElementById("transcript");
  var tokenTag = document.querySelector('meta[name="csrf-token"]');
  var speaking = document.getElementById("simulated-patient");
  if (!form || !transcript || !tokenTag) {
    return;
  }

  function add(kind, text) {
    var item = document.createElement("li");
    item.className = "bubble " + kind;
    item.textContent = text;
    transcript.appendChild(item);
    item.scrollIntoView({ block: "end" });
  }

  function busy(on) {
    form.dataset.state = on ? "sending" : "idle";
    form.querySelector("button[type=submit]").disabled = on;
  }

  function speakingAs(patient) {
    if (!speaking || !patient || !patient.card_no || speaking.dataset.card === patient.card_no) {
      return;
    }
    var card = document.createElement("span");
    card.className = "card-no";
    card.textContent = patient.card_no;
    speaking.textContent = speaking.dataset.label + " ";
    speaking.appendChild(card);
    speaking.dataset.card = patient.card_no;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var cardNo = form.elements.card_no.value.trim();
    var text = form.elements.text.value.trim();
    if (!text) {
      return;
    }
    add("patient", text);
    form.elements.text.value = "";
    busy(true);
    fetch(form.dataset.endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": tokenTag.content
      },
      body: JSON.stringify({ card_no: cardNo, text: text })
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          add("error", body.reason || form.dataset.failed);
          return;
        }
        speakingAs(body.patient);
        if (!body.replies || body.replies.length === 0) {
          add("system", form.dataset.noReply);
          return;
        }
        body.replies.forEach(function (reply) { add("clinic", reply); });
      });
    }).catch(function () {
      add("error", form.dataset.failed);
    }).then(function () {
      busy(false);
      form.elements.text.focus();
    });
  });
}());
