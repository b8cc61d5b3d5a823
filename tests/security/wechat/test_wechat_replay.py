"""The WeChat webhook, as an attacker who captured one signed request or can send any body.

Plain mode signs only (timestamp, nonce): a captured signature cannot carry another body, and an
account in safe mode takes no plain request at all. A malformed ciphertext (with a good
``msg_signature``) is a 400, never a 500. Requests are built with wechatpy's real crypto.
"""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select
from wechatpy.crypto import PrpCrypto

from bot.models import ConversationMessage, InboundReceipt, WeChatNonce
from careloop.runtime import Runtime
from tests.conftest import flask_app_for
from tests.fakes.wechat_server import WeChatPeer
from tests.webhooks.conftest import WECHAT_APPID, WECHAT_TOKEN, wechat_settings_for


def count(db, model):
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model))


def stored(db):
    return count(db, InboundReceipt), count(db, ConversationMessage)


@pytest.fixture
def plain_client(settings, wechat_fake, database, key_ring, clock):
    """The webhook of an account configured for plain mode (no WECHAT_AES_KEY)."""
    runtime = Runtime(settings=wechat_settings_for(settings, wechat_fake, safe_mode=False), key_ring=key_ring,
                      db=database, clock=clock)
    return flask_app_for(runtime).test_client()


@pytest.fixture
def plain_peer(clock):
    return WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, now=lambda: clock.now().timestamp())


def post(client, query, body):
    return client.post("/webhooks/wechat", query_string=query, data=body, content_type="text/xml")


def test_a_captured_plain_signature_cannot_carry_another_body(db, plain_client, plain_peer, wechat_patient):
    patient = wechat_patient()
    query, body = plain_peer.signed(plain_peer.text_xml(patient.wechat_openid, "帮助"))
    assert post(plain_client, query, body).status_code == 200
    before = stored(db)
    forged = plain_peer.text_xml(patient.wechat_openid, "问卷").encode()
    response = post(plain_client, query, forged)
    assert response.status_code == 403
    assert stored(db) == before


def test_a_captured_plain_signature_cannot_carry_another_users_message(db, plain_client, plain_peer,
                                                                       wechat_patient):
    victim, other = wechat_patient(), wechat_patient()
    query, body = plain_peer.signed(plain_peer.text_xml(other.wechat_openid, "帮助"))
    assert post(plain_client, query, body).status_code == 200
    forged = plain_peer.text_xml(victim.wechat_openid, "退订").encode()
    assert post(plain_client, query, forged).status_code == 403
    db.expire_all()
    assert not victim.consent_for("wechat").opted_out


def test_wechat_redelivering_the_same_plain_request_is_answered_as_the_first_time(db, plain_client, plain_peer,
                                                                                  wechat_patient):
    patient = wechat_patient()
    query, body = plain_peer.signed(plain_peer.text_xml(patient.wechat_openid, "问卷"))
    first = post(plain_client, query, body)
    again = post(plain_client, query, body)
    assert first.status_code == again.status_code == 200
    assert plain_peer.read_reply(first.data)["Content"] == plain_peer.read_reply(again.data)["Content"]
    assert count(db, InboundReceipt) == 1


def test_seen_pairs_are_kept_only_inside_the_replay_window(db, plain_client, plain_peer, wechat_patient, clock):
    patient = wechat_patient()
    old_query, old_body = plain_peer.signed(plain_peer.text_xml(patient.wechat_openid, "帮助"))
    assert post(plain_client, old_query, old_body).status_code == 200
    assert count(db, WeChatNonce) == 1
    clock.advance(seconds=301)
    query, body = plain_peer.signed(plain_peer.text_xml(patient.wechat_openid, "帮助"))
    assert post(plain_client, query, body).status_code == 200
    db.expire_all()
    assert [row.stamp for row in db.scalars(select(WeChatNonce))] == [int(query["timestamp"])]
    # The forgotten pair is no way in: its timestamp is stale now.
    assert post(plain_client, old_query, plain_peer.text_xml(patient.wechat_openid, "问卷").encode()).status_code \
        == 403


def test_an_account_in_safe_mode_refuses_a_plain_request_with_a_good_signature(db, wechat_client, plain_peer,
                                                                              wechat_patient):
    patient = wechat_patient()
    query, body = plain_peer.signed(plain_peer.text_xml(patient.wechat_openid, "问卷"))
    before = stored(db)
    assert post(wechat_client, query, body).status_code == 403
    assert stored(db) == before


def _encrypted_frame(peer, plaintext: bytes) -> str:
    """``plaintext`` AES-encrypted under the account's key as it is, with no WeChat frame around it."""
    from wechatpy.crypto.cryptography import WeChatCipher

    return base64.b64encode(WeChatCipher(peer.crypto.key).encrypt(plaintext)).decode()


MALFORMED = {
    "not base64": lambda peer: "%%%not-base64%%%",
    "one byte": lambda peer: base64.b64encode(b"x").decode(),
    "not whole blocks": lambda peer: base64.b64encode(bytes(20)).decode(),
    "one block": lambda peer: _encrypted_frame(peer, bytes(16)),
    "frame shorter than its length field": lambda peer: _encrypted_frame(peer, bytes(16) + b"\x00" + bytes([15] * 15)),
    "not UTF-8": lambda peer: _encrypted_frame(peer, bytes(16) + b"\x00\x00\x00\x02\xff\xfe" + bytes([10] * 10)),
    "empty message": lambda peer: PrpCrypto(peer.crypto.key).encrypt("", WECHAT_APPID).decode(),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_ciphertext_with_a_good_signature_is_a_400(db, wechat_client, wechat_peer, wechat_patient, kind):
    wechat_patient()
    encrypted = MALFORMED[kind](wechat_peer)
    stamp, nonce = str(wechat_peer.now()), "777"
    query = {"signature": wechat_peer.signature(stamp, nonce), "timestamp": stamp, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": wechat_peer.signature(stamp, nonce, encrypted)}
    body = f"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    before = stored(db)
    response = post(wechat_client, query, body.encode())
    assert response.status_code == 400, response.get_data(as_text=True)
    assert stored(db) == before


def test_a_frame_whose_length_runs_past_its_end_names_no_account_of_ours(db, wechat_client, wechat_peer):
    encrypted = _encrypted_frame(wechat_peer, bytes(16) + b"\xff\xff\xff\xff" + bytes([12] * 12))
    stamp, nonce = str(wechat_peer.now()), "778"
    query = {"signature": wechat_peer.signature(stamp, nonce), "timestamp": stamp, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": wechat_peer.signature(stamp, nonce, encrypted)}
    body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    assert post(wechat_client, query, body.encode()).status_code == 403  # refused as for another account
