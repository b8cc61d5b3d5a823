"""The engine's own words to patients, in every language it speaks.

Flow files carry their questions and messages; these are the texts the engine adds around them:
re-ask messages, reminders, the hand-off note, and the instructions that rendering puts under a
question (text channels) or speaks (voice). Short and kind, for an older person on a phone.
A flow can override the re-ask message of any question (``invalid:``) and the flow-wide texts
(``texts: {reminder, handoff, expired}``).
"""

from __future__ import annotations

CATALOGUE: dict[str, dict[str, str]] = {
    # Re-ask messages, one per kind of mistake.
    "invalid.choice": {
        "zh": "请回复{first}-{last}之间的数字。",
        "en": "Please reply with a number from {first} to {last}.",
    },
    "invalid.choice2": {"zh": "请回复数字1或2。", "en": "Please reply 1 or 2."},
    "invalid.multi": {
        "zh": "请回复选项前面的数字，选几项就用逗号隔开，例如：1,3。",
        "en": "Please reply with the numbers of your answers, separated by commas, e.g. 1,3.",
    },
    "invalid.multi_exclusive": {
        "zh": "“{label}”不能和其他选项一起选，请再回复一次。",
        "en": "\"{label}\" cannot be chosen together with other answers. Please reply again.",
    },
    "invalid.number": {
        "zh": "请回复{min}到{max}之间的数字{unit}。",
        "en": "Please reply with a number from {min} to {max}{unit}.",
    },
    "invalid.integer": {
        "zh": "请回复{min}到{max}之间的整数{unit}。",
        "en": "Please reply with a whole number from {min} to {max}{unit}.",
    },
    "invalid.date": {
        "zh": "请按“年-月-日”回复日期，例如：{example}。",
        "en": "Please reply with a date, e.g. {example}.",
    },
    "invalid.date_future": {
        "zh": "这个日期还没到。请回复今天或以前的日期，例如：{example}。",
        "en": "That date has not come yet. Please reply with today or an earlier date, e.g. {example}.",
    },
    "invalid.date_past": {
        "zh": "这个日期已经过去了。请回复今天或以后的日期，例如：{example}。",
        "en": "That date has passed. Please reply with today or a later date, e.g. {example}.",
    },
    "invalid.text": {"zh": "请用文字回复几句话。", "en": "Please reply with a few words."},
    "invalid.bp": {
        "zh": "请按“高压/低压”回复，例如：135/85。",
        "en": "Please reply as top number/bottom number, e.g. 135/85.",
    },
    "invalid.bp_range": {
        "zh": "这个读数好像不太对。请再看一下血压计，按“高压/低压”回复，例如：135/85。",
        "en": "That reading does not look right. Please check the monitor and reply like 135/85.",
    },
    "invalid.glucose": {
        "zh": "请回复血糖的数值，例如：6.1。",
        "en": "Please reply with your blood sugar reading, e.g. 6.1.",
    },
    "invalid.glucose_range": {
        "zh": "这个数值好像不太对。请再看一下血糖仪，回复数值，例如：6.1。",
        "en": "That reading does not look right. Please check the meter and reply with the number, e.g. 6.1.",
    },
    "invalid.glucose_fasting": {
        "zh": "这里需要空腹血糖（早上起床后、吃饭前测的）。请回复最近一次的空腹血糖，例如：6.1。",
        "en": "We need a fasting reading here (taken in the morning before eating). "
        "Please reply with your latest one, e.g. 6.1.",
    },
    "invalid.reading": {
        "zh": "请这样回复：血压135/85，或者 空腹血糖6.1。",
        "en": "Please reply like this: BP 135/85, or fasting glucose 6.1.",
    },
    "invalid.reading_kind": {
        "zh": "请告诉我们这是什么读数，例如：血压135/85，或者 空腹血糖6.1。",
        "en": "Please tell us what the reading is, e.g. BP 135/85, or fasting glucose 6.1.",
    },
    # Flow-wide texts (a flow may override them under ``texts:``).
    "reminder": {
        "zh": "您好，我们还在等您的回复。",
        "en": "Hello, we are still waiting for your reply.",
    },
    "handoff": {
        "zh": "没关系，我们的工作人员会尽快联系您。",
        "en": "That is all right. One of our staff will contact you soon.",
    },
    # Staff notes the engine writes itself (staff read both languages in the work queue).
    "staff.unanswered": {
        "zh": "患者连续{count}次没能回答这个问题，请人工联系。",
        "en": "The patient could not answer this question after {count} tries. Please contact them.",
    },
    "staff.flow_error": {
        "zh": "流程出错，会话已转人工，请联系患者并检查流程设置。",
        "en": "The flow failed and the session was handed to staff. Please contact the patient and check the flow.",
    },
    # Answer words.
    "yes": {"zh": "是", "en": "Yes"},
    "no": {"zh": "否", "en": "No"},
    "list_separator": {"zh": "、", "en": ", "},
    "nothing": {"zh": "—", "en": "—"},
    "sex.male": {"zh": "男", "en": "male"},
    "sex.female": {"zh": "女", "en": "female"},
    # Instructions under a question on text channels.
    "text.choice": {"zh": "请回复数字{first}-{last}", "en": "Please reply with a number from {first} to {last}"},
    "text.choice2": {"zh": "请回复数字1或2", "en": "Please reply 1 or 2"},
    "text.multi": {
        "zh": "可以选多项，请回复数字，用逗号隔开，例如：1,3",
        "en": "You can choose more than one. Reply with the numbers, e.g. 1,3",
    },
    "text.number": {"zh": "请回复数字{unit}", "en": "Please reply with a number{unit}"},
    "text.scale": {
        "zh": "请回复{min}-{max}之间的数字",
        "en": "Please reply with a number from {min} to {max}",
    },
    "text.scale_ends": {"zh": "{value} = {label}", "en": "{value} = {label}"},
    "text.date": {"zh": "请按“年-月-日”回复，例如：{example}", "en": "Please reply with a date, e.g. {example}"},
    "text.bp": {"zh": "请按“高压/低压”回复，例如：135/85", "en": "Please reply as top/bottom number, e.g. 135/85"},
    "text.glucose": {"zh": "请回复数值，例如：6.1{unit}", "en": "Please reply with the number, e.g. 6.1{unit}"},
    "text.reading": {
        "zh": "例如：血压135/85，或者 空腹血糖6.1",
        "en": "For example: BP 135/85, or fasting glucose 6.1",
    },
    "unit": {"zh": "（单位：{unit}）", "en": " ({unit})"},
    # Spoken instructions (voice).
    "voice.press": {"zh": "{label}，请按{number}。", "en": "For {label}, press {number}."},
    "voice.say": {"zh": "您也可以直接说出您的回答。", "en": "You can also say your answer."},
    "voice.multi": {
        "zh": "可以选多项，请依次按数字，按完请按井号键。",
        "en": "You can choose more than one. Press the numbers one after another, then press the hash key.",
    },
    "voice.number": {
        "zh": "请用按键输入数字{unit}，按完请按井号键。有小数点请按星号键。",
        "en": "Please key in the number{unit}, then press the hash key. For a decimal point, press star.",
    },
    "voice.scale": {
        "zh": "请按{min}到{max}之间的数字，按完请按井号键。",
        "en": "Please key in a number from {min} to {max}, then press the hash key.",
    },
    "voice.date": {
        "zh": "请按年、月、日输入八位数字，例如二零二四零三零五，按完请按井号键。",
        "en": "Please key in the date as eight digits, year, month, day, such as 2 0 2 4 0 3 0 5, then press hash.",
    },
    "voice.bp": {
        "zh": "请先输入高压，按星号键，再输入低压，最后按井号键。也可以直接说，例如：一百三十五，八十五。",
        "en": "Key in the top number, press star, then the bottom number, then press hash. "
        "Or just say it, for example: 135 over 85.",
    },
    "voice.glucose": {
        "zh": "请用按键输入血糖数值，小数点请按星号键，按完请按井号键。也可以直接说出数值。",
        "en": "Key in the reading, press star for the decimal point, then press hash. Or just say the number.",
    },
    "voice.reading": {
        "zh": "请直接说出您的读数，例如：血压一百三十五，八十五；或者，空腹血糖六点一。",
        "en": "Please say your reading, for example: blood pressure 135 over 85, or fasting glucose 6.1.",
    },
    "voice.text": {
        "zh": "请在提示音后说出您的回答，说完请按井号键。",
        "en": "Please speak your answer after the tone, then press the hash key.",
    },
}


def t(key: str, lang: str, **values: object) -> str:
    """Return catalogue text ``key`` in ``lang`` (Chinese when ``lang`` is unknown), filled with ``values``."""
    entry = CATALOGUE[key]
    text = entry.get(lang) or entry["zh"]
    return text.format(**values) if values else text
