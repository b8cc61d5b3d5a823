// The simulator page: send each message as the chosen patient and show the bot's replies.
(function () {
  "use strict";

  var form = document.getElementById("simulator-form");
  var transcript = document.getElementById("transcript");
  var tokenTag = document.querySelector('meta[name="csrf-token"]');
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

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var cardNo = form.elements.card_no.value.trim();
    var text = form.elements.text.value.trim();
    if (!cardNo || !text) {
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
