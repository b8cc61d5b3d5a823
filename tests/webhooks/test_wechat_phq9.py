"""PHQ-9 over WeChat in safe mode, end to end: bind by the patient's QR code, answer every item with
encrypted messages built as WeChat sends them, read the encrypted passive replies, find it all in the record."""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.wechat import keep_binding_qr, request_binding_qr
from bot.models import BindingToken
from care.models import Observation, StaffTask
from care.results import results_of

# Choices 1..4 score 0..3: points [1,2,1,2,1,1,1,0,1] -> total 10, moderate, item 9 positive (spec 6.3).
PHQ9_ANSWERS = ["2", "3", "2", "3", "2", "2", "2", "1", "2"]
QUESTIONS = [
    "（1/9）做事时提不起劲或没有兴趣", "（2/9）感到心情低落、沮丧或绝望", "（3/9）入睡困难、睡不安稳或睡眠过多",
    "（4/9）感觉疲倦或没有活力", "（5/9）食欲不振或吃太多", "（6/9）觉得自己很糟", "（7/9）对事物专注有困难",
    "（8/9）动作或说话速度缓慢", "（9/9）有不如死掉或用某种方式伤害自己的念头",
]
OPENID = "oPatientScansTheirOwnCode0001"


def bind_by_qr(db, wechat_bot, wechat_fake, wechat_post, wechat_peer, patient, *, event="subscribe"):
    """Make the patient's QR code at the fake, then scan it as WeChat reports it; returns the reply text."""
    qr = keep_binding_qr(db, patient, request_binding_qr(wechat_bot.services.adapters["wechat"]))
    db.flush()
    scene = wechat_fake.calls("qrcode/create")[-1].body["action_info"]["scene"]["scene_str"]
    key = f"qrscene_{scene}" if event == "subscribe" else scene
    response = wechat_post(wechat_peer.event_xml(OPENID, event, key=key, Ticket=qr.ticket))
    assert response.status_code == 200
    db.refresh(patient)  # the webhook bound it in its own session
    return wechat_peer.read_reply(response.data).get("Content", "")


def test_phq9_over_wechat_in_safe_mode(db, make_patient, wechat_bot, wechat_fake, wechat_post, wechat_peer,
                                       wechat_say):
    patient = make_patient()
    assert "绑定成功" in bind_by_qr(db, wechat_bot, wechat_fake, wechat_post, wechat_peer, patient)
    assert patient.wechat_openid == OPENID

    first = wechat_say(OPENID, "问卷")
    assert QUESTIONS[0] in first
    assert "完全不会" in first
    transcript = [first]
    for index, answer in enumerate(PHQ9_ANSWERS):
        reply = wechat_say(OPENID, answer)
        transcript.append(reply)
        if index + 1 < len(QUESTIONS):
            assert QUESTIONS[index + 1] in reply, (index, reply)
    transcript.append(wechat_say(OPENID, "2"))  # the tenth, unscored question: how difficult

    saved = {row.name: row for row in results_of(db, patient)}
    assert [saved[f"phq9_q{n}"].value for n in range(1, 10)] == [1, 2, 1, 2, 1, 1, 1, 0, 1]
    assert saved["phq9_total"].value == 10
    assert saved["phq9_total"].category == "moderate"
    total = db.scalars(select(Observation).where(Observation.patient_id == patient.id,
                                                 Observation.code == "44261-6")).one()
    assert total.value == 10
    tasks = list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))
    assert [task.priority for task in tasks] == ["urgent"]
    text = "\n".join(transcript)
    assert "12356" in text
    assert text.index("12356") < text.index("10 分")  # the safety message comes before the score


def test_a_scan_by_a_follower_binds_too_and_the_qr_ticket_is_kept(db, make_patient, wechat_bot, wechat_fake,
                                                                  wechat_post, wechat_peer):
    patient = make_patient()
    assert "绑定成功" in bind_by_qr(db, wechat_bot, wechat_fake, wechat_post, wechat_peer, patient, event="SCAN")
    token = db.scalars(select(BindingToken).where(BindingToken.patient_id == patient.id)).one()
    assert token.qr_ticket == wechat_fake.calls("qrcode/create")[-1].answer["ticket"]
    assert token.consumed_at is not None
    call = wechat_fake.calls("qrcode/create")[-1].body
    assert call["action_name"] == "QR_STR_SCENE"
    assert call["expire_seconds"] == 30 * 24 * 3600
    assert call["action_info"]["scene"]["scene_str"].startswith("bind:")
    assert patient.wechat_openid == OPENID


def test_a_used_qr_code_binds_nobody_else(db, make_patient, wechat_bot, wechat_fake, wechat_post, wechat_peer):
    patient = make_patient()
    bind_by_qr(db, wechat_bot, wechat_fake, wechat_post, wechat_peer, patient)
    scene = wechat_fake.calls("qrcode/create")[-1].body["action_info"]["scene"]["scene_str"]
    response = wechat_post(wechat_peer.event_xml("oSomeoneElse000000000000001", "subscribe", key=f"qrscene_{scene}"))
    reply = wechat_peer.read_reply(response.data).get("Content", "")
    assert "绑定成功" not in reply
    assert "卡号" in reply
    assert patient.wechat_openid == OPENID


def test_a_menu_click_starts_the_questionnaire(wechat_post, wechat_peer, wechat_patient):
    patient = wechat_patient()
    response = wechat_post(wechat_peer.event_xml(patient.wechat_openid, "CLICK", key="问卷"))
    assert QUESTIONS[0] in wechat_peer.read_reply(response.data)["Content"]
