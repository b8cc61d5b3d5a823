"""What the bot says outside flows, in zh and en: short and kind, for a 70-year-old on a phone.

A text names no channel it may not be read on: a WeChat message never says 短信/SMS and an SMS
never says 微信/WeChat. Most texts are worded for every channel; where the wording must differ
(an SMS starts with the clinic's 【签名】), :data:`CHANNEL_TEXTS` holds the channel's own variant.
The clinic's name, phone and so on come from :meth:`bot.config.Clinic.placeholders`, in the
patient's language.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

TEXTS: dict[str, dict[str, str]] = {
    "menu": {
        "zh": "您好！回复以下关键词开始：\n血压 / 血糖：记录今天的读数\n问卷：心情问卷\n帮助：联系我们",
        "en": "Hello! Reply with a word to begin:\nBP / glucose: record today's reading\nmood: mood questionnaire\n"
              "HELP: contact us",
    },
    "help": {
        "zh": "{clinic}：如需帮助请致电 {phone}。回复“退订”可停止接收消息。",
        "en": "{clinic}: for help call {phone}. Reply STOP to stop messages.",
    },
    "opted_out": {
        "zh": "您已退订，我们不会再通过此渠道联系您。回复“订阅”可重新开通。",
        "en": "You are unsubscribed and will get no more messages here. Reply START to subscribe again.",
    },
    "opted_in": {
        "zh": "已重新订阅，欢迎回来！",
        "en": "You are subscribed again. Welcome back!",
    },
    "not_registered": {
        "zh": "您好，这个号码还没有在{clinic}登记。如需帮助请致电 {phone}。",
        "en": "Hello, this number is not registered with {clinic}. For help call {phone}.",
    },
    "welcome_bind": {
        "zh": "欢迎关注{clinic}！请回复您的会员卡号，完成身份绑定。",
        "en": "Welcome to {clinic}! Please reply with your card number to link your account.",
    },
    "bind_code_sent": {
        "zh": "如果这个卡号已在{clinic}登记，我们已把6位验证码发到登记的手机，请在10分钟内回复验证码。"
              "没有收到请致电 {phone}。",
        "en": "If this card number is registered with {clinic}, we have texted a 6-digit code to the phone on "
              "file. Please reply with it within 10 minutes. No code? Call {phone}.",
    },
    "bind_limited": {
        "zh": "今天的尝试次数已用完。我们的医护团队会帮您完成绑定，您也可以致电 {phone}。",
        "en": "That was the last try for today. Our care team will help you link your account; "
              "you can also call {phone}.",
    },
    "bind_code_wrong": {
        "zh": "验证码不对，请再试一次。",
        "en": "That code is not right. Please try again.",
    },
    "bind_code_expired": {
        "zh": "验证码已过期，请重新发送您的卡号。",
        "en": "The code has expired. Please send your card number again.",
    },
    "bound": {
        "zh": "绑定成功！{name}，以后的健康随访会在这里发给您。",
        "en": "All set, {name}! Your health follow-ups will come here.",
    },
    "bind_code_sms": {
        "zh": "【{sender}】您的账号绑定验证码是{code}，10分钟内有效。如非本人操作请忽略。",
        "en": "[{sender}] Your account link code is {code}, valid for 10 minutes. Ignore if this wasn't you.",
    },
    "followup_invite": {
        "zh": "{clinic}：您有一项健康随访，回复1开始。",
        "en": "{clinic}: you have a health follow-up. Reply 1 to begin.",
    },
    "session_expired": {
        "zh": "上次的问卷已过期。需要时回复关键词重新开始。",
        "en": "Your last questionnaire has expired. Reply with a keyword to start again.",
    },
    "message_for_the_team": {
        "zh": "您的消息已收到，我们的医护人员会尽快回复您。如需马上帮助，请致电 {phone}。",
        "en": "We have your message. Someone from your care team will reply soon. If you need help now, call {phone}.",
    },
    "red_flag_emergency": {
        "zh": "您说的情况可能很紧急。如果现在就有这样的不舒服，请马上拨打 {emergency}，或请身边的人帮您拨打。",
        "en": "What you describe may be an emergency. If it is happening now, call {emergency} right away, "
              "or ask someone near you to call.",
    },
    "red_flag_self_harm": {
        "zh": "谢谢您告诉我们，您并不孤单。如果您现在有伤害自己的想法，请马上拨打心理援助热线 12356，"
              "或拨打 {emergency}，也请让家人或朋友陪在您身边。",
        "en": "Thank you for telling us. You are not alone. If you are thinking of hurting yourself now, call the "
              "mental health helpline 12356 or {emergency} right away, and ask family or a friend to stay with you.",
    },
    "red_flag_team_told": {
        "zh": "我们已经通知医护人员，他们会尽快联系您。",
        "en": "We have told your care team, and they will contact you as soon as they can.",
    },
    "turn_failed": {
        "zh": "抱歉，刚才系统出了点问题，没能处理您的消息。我们的医护人员已收到通知，会尽快联系您。"
              "急事请致电 {phone}。",
        "en": "Sorry, something went wrong and we could not handle your message. Our care team has been told and "
              "will contact you soon. If it is urgent, call {phone}.",
    },
    "media_unsupported": {
        "zh": "抱歉，我们暂时看不懂图片和语音，请用文字或数字回复。",
        "en": "Sorry, we cannot read pictures or voice notes yet. Please reply in text or numbers.",
    },
    "voice_consent": {
        "zh": "您好，这里是{clinic}的健康随访电话。为保证服务质量，本次通话将被录音。",
        "en": "Hello, this is a health follow-up call from {clinic}. This call is recorded for quality.",
    },
    "voice_consent_no_recording": {
        "zh": "您好，这里是{clinic}的健康随访电话。",
        "en": "Hello, this is a health follow-up call from {clinic}.",
    },
    "voice_goodbye": {
        "zh": "谢谢您，再见。",
        "en": "Thank you. Goodbye.",
    },
    "voice_no_input": {
        "zh": "没有听到您的回答，我们稍后再联系您。再见。",
        "en": "We did not hear an answer. We will call again later. Goodbye.",
    },
    "voice_reprompt": {
        "zh": "没有听到您的回答，我再说一遍。",
        "en": "We did not hear you. Here is the question again.",
    },
    "voice_continue_in_messages": {
        "zh": "您好，您正在用文字消息回答我们的问题，请在那里继续回复。谢谢，再见。",
        "en": "Hello. You are answering our questions by message. Please go on there. Thank you, goodbye.",
    },
    "voice_nothing_open": {
        "zh": "您好，这里是{clinic}。目前没有需要您回答的随访。如需帮助请致电 {phone}。再见。",
        "en": "Hello, this is {clinic}. There is nothing for you to answer right now. For help call {phone}. "
              "Goodbye.",
    },
    "voice_not_registered": {
        "zh": "您好，这个号码还没有在{clinic}登记。如需帮助请致电 {phone}。再见。",
        "en": "Hello, this number is not registered with {clinic}. For help call {phone}. Goodbye.",
    },
    "voice_recording_ask": {
        "zh": "为了更好地为您服务，我们想为这次通话录音。同意录音请按1或说“同意”；不同意请按2或说“不同意”。",
        "en": "To care for you well, we would like to record this call. To agree, press 1 or say yes. "
              "If you do not agree, press 2 or say no.",
    },
    "voice_recording_granted": {
        "zh": "谢谢您。现在开始录音。如需停止录音，请随时说“停止录音”，或按星号键。",
        "en": "Thank you. This call is now recorded. To stop the recording at any time, say stop recording, "
              "or press the star key.",
    },
    "voice_recording_on": {
        "zh": "您好，这里是{clinic}的健康随访电话。按照您之前的同意，这次通话会录音。"
              "如需停止录音，请随时说“停止录音”，或按星号键。",
        "en": "Hello, this is a health follow-up call from {clinic}. As you agreed before, this call is recorded. "
              "To stop the recording at any time, say stop recording, or press the star key.",
    },
    "voice_recording_refused": {
        "zh": "好的，这次通话不录音。",
        "en": "All right, this call is not recorded.",
    },
    "voice_recording_not_heard": {
        "zh": "没有听到您的回答，这次通话不录音。",
        "en": "We did not hear an answer, so this call is not recorded.",
    },
    "voice_recording_unavailable": {
        "zh": "抱歉，这次通话暂时无法录音，我们继续。",
        "en": "Sorry, we cannot record this call right now. Let us go on.",
    },
    "voice_recording_stopped": {
        "zh": "好的，录音已经停止，接下来的通话不再录音。",
        "en": "All right, the recording has stopped. The rest of this call is not recorded.",
    },
    "voice_not_recording": {
        "zh": "这次通话没有录音。",
        "en": "This call is not being recorded.",
    },
    "voice_recording_stop_failed": {
        "zh": "抱歉，录音没能停止，我们先结束这次通话，稍后再联系您。再见。",
        "en": "Sorry, we could not stop the recording, so we will end this call now and call again later. "
              "Goodbye.",
    },
    "voice_answer_recorded": {
        "zh": "（语音回答，录音 {sid}）",
        "en": "(spoken answer, recording {sid})",
    },
}


# A channel's own wording of a text, where the text for every channel will not do.
CHANNEL_TEXTS: dict[str, dict[str, dict[str, str]]] = {
    "sms": {
        # China's carriers want every SMS to open with the sender's registered signature.
        "followup_invite": {
            "zh": "【{sender}】您有一项健康随访，回复1开始。",
            "en": "[{sender}] You have a health follow-up. Reply 1 to begin.",
        },
    },
}


@runtime_checkable
class InLanguages(Protocol):
    """A value given in both languages (the clinic's name): ``say`` uses the patient's."""

    def in_language(self, lang: str) -> str: ...


def say(key: str, lang: str, *, channel: str | None = None, **values: Any) -> str:
    """The text ``key`` in ``lang`` (falling back to zh) as ``channel`` carries it, ``{placeholders}`` filled.

    A value given in both languages (:class:`InLanguages`) is filled in ``lang``.
    """
    variants = CHANNEL_TEXTS.get(channel or "", {}).get(key) or TEXTS[key]
    filled = {name: value.in_language(lang) if isinstance(value, InLanguages) else value
              for name, value in values.items()}
    return variants.get(lang, variants["zh"]).format(**filled)
