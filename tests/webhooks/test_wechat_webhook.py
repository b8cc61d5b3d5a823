"""The WeChat webhook's edge: verification, signatures, replays, hostile XML, parsing, the 5-second rule."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from wechatpy import parse_message

from bot.models import ConversationMessage, InboundReceipt, OutboxMessage
from security.audit import AuditEntry
from tests.fakes.wechat_server import WeChatPeer
from tests.webhooks.conftest import WECHAT_AES_KEY, WECHAT_APPID, WECHAT_TOKEN
from webhooks import wechat as wechat_webhook


def stored(db):
    """How many rows the webhook could have written: receipts, conversation log, audit trail, outbox."""
    return tuple(db.scalar(select(func.count()).select_from(model))
                 for model in (InboundReceipt, ConversationMessage, AuditEntry, OutboxMessage))


# -- GET: the server check ---------------------------------------------------------------------------
def test_the_server_check_echoes_echostr_when_the_signature_is_ours(wechat_client, wechat_peer):
    stamp = str(wechat_peer.now())
    query = {"signature": wechat_peer.signature(stamp, "4242"), "timestamp": stamp, "nonce": "4242",
             "echostr": "7331234567890"}
    response = wechat_client.get("/webhooks/wechat", query_string=query)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "7331234567890"


@pytest.mark.parametrize("tamper", ["signature", "nonce", "missing"])
def test_the_server_check_is_refused_with_a_wrong_signature(wechat_client, wechat_peer, tamper):
    stamp = str(wechat_peer.now())
    query = {"signature": wechat_peer.signature(stamp, "4242"), "timestamp": stamp, "nonce": "4242",
             "echostr": "echo"}
    if tamper == "missing":
        del query["signature"]
    elif tamper == "signature":
        query["signature"] = "0" * 40
    else:
        query["nonce"] = "4243"
    response = wechat_client.get("/webhooks/wechat", query_string=query)
    assert response.status_code == 403
    assert "echo" not in response.get_data(as_text=True)


# -- POST: refusals store nothing ------------------------------------------------------------------------
def test_a_forged_signature_is_refused_and_nothing_is_stored(db, wechat_client, wechat_peer, wechat_patient):
    patient = wechat_patient()
    before = stored(db)
    query, body = wechat_peer.signed(wechat_peer.text_xml(patient.wechat_openid, "问卷"))
    forged = {**query, "signature": WeChatPeer("not-our-token", WECHAT_APPID).signature(query["timestamp"],
                                                                                          query["nonce"])}
    assert wechat_client.post("/webhooks/wechat", query_string=forged, data=body).status_code == 403
    assert stored(db) == before


@pytest.mark.parametrize("dropped", ["signature", "msg_signature", "timestamp", "nonce"])
def test_a_missing_signature_part_is_refused_and_nothing_is_stored(db, wechat_client, wechat_peer, wechat_patient,
                                                                    dropped):
    patient = wechat_patient()
    before = stored(db)
    query, body = wechat_peer.signed(wechat_peer.text_xml(patient.wechat_openid, "问卷"))
    del query[dropped]
    assert wechat_client.post("/webhooks/wechat", query_string=query, data=body).status_code == 403
    assert stored(db) == before


def test_a_message_encrypted_under_a_forged_msg_signature_is_refused(db, wechat_client, wechat_patient, clock):
    patient = wechat_patient()
    # The attacker knows the URL signature scheme but not the token: the msg_signature cannot match.
    impostor = WeChatPeer("guessed-token", WECHAT_APPID, WECHAT_AES_KEY, now=lambda: clock.now().timestamp())
    query, body = impostor.signed(impostor.text_xml(patient.wechat_openid, "问卷"))
    honest = WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, now=lambda: clock.now().timestamp())
    query["signature"] = honest.signature(query["timestamp"], query["nonce"])
    before = stored(db)
    assert wechat_client.post("/webhooks/wechat", query_string=query, data=body).status_code == 403
    assert stored(db) == before


def test_a_message_for_another_account_is_refused(db, wechat_client, wechat_patient, clock):
    patient = wechat_patient()
    other = WeChatPeer(WECHAT_TOKEN, "wx-someone-else", WECHAT_AES_KEY, now=lambda: clock.now().timestamp())
    query, body = other.signed(other.text_xml(patient.wechat_openid, "问卷"))
    before = stored(db)
    assert wechat_client.post("/webhooks/wechat", query_string=query, data=body).status_code == 403
    assert stored(db) == before


@pytest.mark.parametrize("skew", [-301, 301, -3600 * 24])
def test_an_old_or_future_timestamp_is_refused_as_a_replay(db, wechat_post, wechat_peer, wechat_patient, skew):
    patient = wechat_patient()
    before = stored(db)
    response = wechat_post(wechat_peer.text_xml(patient.wechat_openid, "问卷"), timestamp=wechat_peer.now() + skew)
    assert response.status_code == 403
    assert stored(db) == before


def test_a_timestamp_within_five_minutes_is_accepted(wechat_post, wechat_peer, wechat_patient):
    patient = wechat_patient()
    response = wechat_post(wechat_peer.text_xml(patient.wechat_openid, "帮助"), timestamp=wechat_peer.now() - 290)
    assert response.status_code == 200


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<xml><ToUserName>gh_0123456789ab</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol4;</Content><MsgId>1</MsgId></xml>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh_0123456789ab</ToUserName><FromUserName>{openid}</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&secret;</Content><MsgId>2</MsgId></xml>"""

HOSTILE = {
    "billion laughs": BILLION_LAUGHS,
    "external entity": EXTERNAL_ENTITY,
    "bare DTD": '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><MsgType>text</MsgType></xml>',
    "malformed": "<xml><ToUserName>gh</ToUserName><FromUserName>{openid}",
    "not xml": "MsgType=text&Content=hello",
    "wrong root": "<message><MsgType>text</MsgType></message>",
    "no message type": "<xml><FromUserName>{openid}</FromUserName><CreateTime>1</CreateTime></xml>",
}


@pytest.mark.parametrize("safe_mode", [True, False], ids=["inside the encryption", "as the outer body"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_or_malformed_xml_gets_a_400_and_nothing_is_stored(db, wechat_client, wechat_peer, wechat_patient,
                                                                   name, safe_mode):
    patient = wechat_patient()
    xml = HOSTILE[name].format(openid=patient.wechat_openid)
    if safe_mode:
        query, body = wechat_peer.signed(xml)
    else:
        query, body = wechat_peer.signed("<xml/>")
        body = xml.encode()
        query = {key: value for key, value in query.items() if key not in ("encrypt_type", "msg_signature")}
        query.update(encrypt_type="aes", msg_signature="x")  # the outer body is parsed before anything else
    before = stored(db)
    response = wechat_client.post("/webhooks/wechat", query_string=query, data=body, content_type="text/xml")
    assert response.status_code == 400, (name, response.get_data(as_text=True))
    assert stored(db) == before


def test_an_oversized_body_gets_a_413_and_nothing_is_stored(db, wechat_client, wechat_peer, wechat_patient):
    patient = wechat_patient()
    query, body = wechat_peer.signed(wechat_peer.text_xml(patient.wechat_openid, "啊" * 40_000))
    before = stored(db)
    response = wechat_client.post("/webhooks/wechat", query_string=query, data=body, content_type="text/xml")
    assert response.status_code == 413
    assert stored(db) == before


def test_a_plain_message_is_refused_when_the_account_is_in_safe_mode(db, wechat_client, wechat_patient, clock):
    patient = wechat_patient()
    plain = WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, now=lambda: clock.now().timestamp())
    query, body = plain.signed(plain.text_xml(patient.wechat_openid, "问卷"))
    before = stored(db)
    assert wechat_client.post("/webhooks/wechat", query_string=query, data=body).status_code == 403
    assert stored(db) == before


# -- plain mode -----------------------------------------------------------------------------------------
@pytest.fixture
def plain_client(settings, wechat_fake, database, key_ring, clock):
    from careloop.app import create_app
    from careloop.runtime import Runtime
    from tests.webhooks.conftest import wechat_settings_for

    runtime = Runtime(settings=wechat_settings_for(settings, wechat_fake, safe_mode=False), key_ring=key_ring,
                      db=database, clock=clock)
    return create_app(runtime=runtime).test_client()


def test_plain_mode_answers_with_a_plain_passive_reply(plain_client, wechat_patient, clock):
    patient = wechat_patient()
    peer = WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, now=lambda: clock.now().timestamp())
    query, body = peer.signed(peer.text_xml(patient.wechat_openid, "问卷"))
    response = plain_client.post("/webhooks/wechat", query_string=query, data=body)
    assert response.status_code == 200
    reply = peer.read_reply(response.data)
    assert reply["ToUserName"] == patient.wechat_openid
    assert reply["FromUserName"] == peer.account
    assert reply["MsgType"] == "text"
    assert "做事时提不起劲或没有兴趣" in reply["Content"]


def test_plain_mode_refuses_an_encrypted_message_it_has_no_key_for(plain_client, wechat_peer, wechat_patient):
    patient = wechat_patient()
    query, body = wechat_peer.signed(wechat_peer.text_xml(patient.wechat_openid, "问卷"))
    assert plain_client.post("/webhooks/wechat", query_string=query, data=body).status_code == 400


# -- parsing ------------------------------------------------------------------------------------------------
TEXT_MESSAGE = ("<xml><ToUserName><![CDATA[gh_clinic]]></ToUserName><FromUserName><![CDATA[oPatient01]]>"
                "</FromUserName><CreateTime>1764400000</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
                "<Content><![CDATA[{content}]]></Content><MsgId>24987654321</MsgId>{extra}</xml>")


@pytest.mark.parametrize(("kind", "content", "extra"), [
    ("text", "问卷", ""),
    ("text", "  2  ", ""),  # wechatpy strips the text of every field
    ("text", "", ""),  # an empty field is None
    ("TEXT", "1", "<MsgDataId>77</MsgDataId><Idx>1</Idx>"),
    ("text", "有<尖括号> & 符号", ""),
    ("event", "", "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_bind42]]></EventKey>"),
    ("text", "1", "<Nested><Inner>x</Inner></Nested>"),  # not flat: wechatpy's own parser
])
def test_a_message_from_the_safe_parse_is_what_wechatpys_parser_makes(kind, content, extra):
    xml = TEXT_MESSAGE.format(kind=kind, content=content, extra=extra)
    ours = wechat_webhook._message(wechat_webhook._safe_xml(xml), xml)
    theirs = parse_message(xml)
    assert type(ours) is type(theirs)
    assert ours._data == theirs._data


def test_a_voice_message_is_handed_over_as_media_and_gets_an_answer(db, wechat_post, wechat_peer, wechat_patient):
    patient = wechat_patient()
    response = wechat_post(wechat_peer.voice_xml(patient.wechat_openid, recognition="你好"))
    assert response.status_code == 200
    assert db.scalar(select(func.count()).select_from(InboundReceipt)
                     .where(InboundReceipt.patient_id == patient.id)) == 1


def test_an_unknown_wechat_user_is_offered_binding(wechat_say):
    reply = wechat_say("oSomebodyNewOpenId000000001", "你好")
    assert "卡号" in reply


def test_the_channel_is_not_served_when_wechat_is_not_configured(client, wechat_peer):
    query, body = wechat_peer.signed("<xml/>")
    assert client.post("/webhooks/wechat", query_string=query, data=body).status_code == 404
    assert client.get("/webhooks/wechat", query_string=query).status_code == 404


# -- the 5-second rule -------------------------------------------------------------------------------------
class TestALateReply:
    @pytest.fixture
    def wechat_extra(self):
        return {"passive_reply_seconds": 0.0}  # every handling counts as late

    def test_is_answered_with_success_and_sent_as_a_customer_service_message(self, db, wechat_post, wechat_peer,
                                                                             wechat_patient):
        patient = wechat_patient()
        xml = wechat_peer.text_xml(patient.wechat_openid, "问卷")
        response = wechat_post(xml)
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "success"
        queued = list(db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)))
        assert [(row.channel, row.kind, row.purpose) for row in queued] == [("wechat", "text", "reply")]
        assert "做事时提不起劲或没有兴趣" in queued[0].payload["text"]
        assert queued[0].address == patient.wechat_openid
        # WeChat's retry of the same message gets the same answer, and nothing more is queued.
        again = wechat_post(xml)
        assert again.get_data(as_text=True) == "success"
        assert db.scalar(select(func.count()).select_from(OutboxMessage)
                         .where(OutboxMessage.patient_id == patient.id)) == 1
