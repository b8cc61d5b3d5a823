"""The guideline documents advice lines cite, named in zh and en for the printed report.

An advice rule's ``source`` (``advice_rules.yaml``) is one string for staff: the documents it rests
on and, after a colon, a note in whichever language the note was taken from. The printed report is
in one language, so it cites the documents only, each by its name in that language:
:func:`citation_label` finds the known documents in a source string, in the order they appear.
A source naming none of them is printed as written.
"""

from __future__ import annotations

import re

from care.clinical.common import Label

#: (pattern found in a source string, the document's name in zh and en); order of the table does not matter.
DOCUMENTS: tuple[tuple[str, Label], ...] = (
    (
        r"中国高血压防治指南\s*2018",
        Label(
            "中国高血压防治指南(2018年修订版)", "Chinese guidelines for the management of hypertension (2018 revision)"
        ),
    ),
    (
        r"中国2型糖尿病防治指南",
        Label(
            "中国2型糖尿病防治指南(2020年版)",
            "Guideline for the prevention and treatment of type 2 diabetes in China (2020)",
        ),
    ),
    (r"中国血脂管理指南", Label("中国血脂管理指南(2023年)", "Chinese guidelines for lipid management (2023)")),
    (
        r"中国心血管病风险评估和管理指南",
        Label(
            "中国心血管病风险评估和管理指南(2019)",
            "Chinese guideline on the assessment and management of cardiovascular risk (2019)",
        ),
    ),
    (r"中国居民膳食指南", Label("中国居民膳食指南(2022)", "Dietary guidelines for Chinese residents (2022)")),
    (
        r"中国高尿酸血症与痛风诊疗指南",
        Label(
            "中国高尿酸血症与痛风诊疗指南(2019)",
            "Chinese guidelines for the diagnosis and treatment of hyperuricaemia and gout (2019)",
        ),
    ),
    (
        r"\bWHO\b",
        Label(
            "世界卫生组织身体活动和久坐行为指南(2020)",
            "WHO guidelines on physical activity and sedentary behaviour (2020)",
        ),
    ),
    (
        r"Bull FC",
        Label("Bull FC 等, Br J Sports Med 2020;54:1451-1462", "Bull FC et al., Br J Sports Med 2020;54:1451-1462"),
    ),
    (
        r"KDIGO",
        Label(
            "KDIGO 慢性肾脏病评估与管理指南(2012)", "KDIGO guideline for the evaluation and management of CKD (2012)"
        ),
    ),
    (r"CKD-EPI", Label("CKD-EPI 2021 肾小球滤过率公式", "CKD-EPI 2021 eGFR equation")),
    (r"WS/T\s*428", Label("WS/T 428-2013 成人体重判定", "WS/T 428-2013 criteria of weight for adults")),
    (r"China-PAR", Label("China-PAR 风险评估模型", "China-PAR risk model")),
    (r"PHQ-9", Label("患者健康问卷(PHQ-9)", "Patient Health Questionnaire (PHQ-9)")),
    (r"GAD-7", Label("广泛性焦虑量表(GAD-7)", "Generalized Anxiety Disorder scale (GAD-7)")),
    (r"12356", Label("全国统一心理援助热线 12356", "national mental health hotline 12356")),
)

_COMPILED = tuple((re.compile(pattern), label) for pattern, label in DOCUMENTS)


def citation_label(source: str) -> Label:
    """Return the documents ``source`` cites, joined in each language (``source`` itself if none is known)."""
    found: list[tuple[int, Label]] = []
    for pattern, label in _COMPILED:
        match = pattern.search(source)
        if match is not None and label not in (known for _, known in found):
            found.append((match.start(), label))
    if not found:
        return Label(source, source)
    found.sort(key=lambda item: item[0])
    return Label("；".join(label.zh for _, label in found), "; ".join(label.en for _, label in found))
