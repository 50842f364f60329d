"""`screening explain` on the seed's FAQ cases (tests/scenarios.py people, on the shared issue-6 lake)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from jobs.explain import gather, render, resolve_key
from jobs.keys import person_key_py
from tests.dispatch_lake import RUN1, RUN2, scenario_lake
from tests.scenarios import P


def test_explain_takes_an_id_number_or_a_person_key_and_nothing_else():
    key = person_key_py(P["refunded"])
    assert resolve_key(P["refunded"]) == key == resolve_key(key.upper())
    with pytest.raises(SystemExit, match="neither an 18-character ID number nor a 64-hex person key"):
        resolve_key("12345")


@pytest.fixture(scope="module")
def explain(spark):
    lake = scenario_lake(spark)

    def fn(name: str, at: str | None = None, lang: str = "zh") -> list[str]:
        return render(gather(spark, lake, P[name], datetime.fromisoformat(at) if at else None), lang).splitlines()

    return fn


@pytest.mark.slow
def test_refunded_ticket_shows_nothing(explain):
    assert explain("refunded") == [
        f"人员 110105********{P['refunded'][-4:]}(运行 {RUN2} 发布,数据截至 2022-05-12 01:00)",
        "近14天内没有弹窗原因:健康宝为绿码。",
    ]


@pytest.mark.slow
def test_phone_registered_to_your_id_names_the_phone_and_the_commitment_letter(explain):
    out = explain("relative_unsigned")
    assert out[1] == "1. 【弹窗③ 到访县级中高风险地区】生效中(自 5月3日 12:00 起)"
    assert out[2] == (
        "   依据:登记在您身份证名下的手机号 139****0001 于 5月3日 在河北路北区停留,公告 a-130203 于 5月1日 00:00 "
        "公布为中风险(自 5月1日 00:00 起)"
    )
    assert out[3] == "   途径:手机号 139****0001(登记在您身份证名下)"
    assert "未解除。解除条件:社区核实为非本人涉疫后解除(经名下登记手机号关联的,需本人签署承诺书)" in out[5]
    assert out[6].endswith("如该号码实为亲属使用,请到社区说明并签署疫情防控承诺书。")
    # first dispatched in RUN1; the community by the name it had at RUN2 (renamed on 5月11日)
    assert out[-1] == "派单:社区 光华里北社区(110105001001) —— 核实并上报,时限 5月11日 01:00,已超期"


@pytest.mark.slow
def test_areas_upgraded_after_you_left_say_so_with_the_announcement(explain):
    out = explain("upgraded_after")
    assert [x for x in out if x.startswith(("1.", "2."))] == [
        "1. 【弹窗③ 到访中高风险区域】生效中(自 5月6日 12:00 起)",
        "2. 【弹窗③ 到访中高风险区域】生效中(自 5月8日 09:00 起)",
    ]
    assert (
        "   公告 a-up2:5月8日 09:00 公布为高风险,自 5月2日 00:00 起生效。追溯升级:公布时您已离开,该地在您离开后才被列为风险地区"
        in out
    )
    en = explain("upgraded_after", lang="en")
    assert any("(retroactive: upgraded after you left)" in x and "a-up1" in x for x in en)


@pytest.mark.slow
def test_nat_not_uploaded_points_to_the_lab_then_releases_when_the_result_arrives(explain):
    then = explain("nat_late", at="2022-05-10T02:00:00")
    assert then[0].endswith(f"(运行 {RUN1} 发布,数据截至 2022-05-10 01:00)")
    assert then[1] == "1. 【弹窗④ 72小时内购买“四类”药品】生效中(自 5月8日 10:00 起)"
    assert (
        "核酸样本 n-late 于 5月8日 12:00 采样,超过24小时平台仍无结果:"
        "请联系检测机构 北京市朝阳区疾病预防控制中心实验室(lab1) 上传结果(已派单督促)。" in then
    )
    now = explain("nat_late")
    assert now[1:3] == [
        "目前没有生效的弹窗原因:健康宝为绿码。以下原因已解除:",
        "1. 【弹窗④ 72小时内购买“四类”药品】已解除",
    ]
    assert "   已于 5月10日 12:00 解除,依据:核酸检测阴性(核酸样本 n-late,5月8日 12:00 采样)" in now


@pytest.mark.slow
def test_the_chinese_explanation_has_no_english_words_but_codes(explain):
    english = re.compile(
        r"as-of|person_key|\b(NAT|sample|sampled|verification|policy|record|released|active|evidence)\b"
    )
    for name in P:
        out = explain(name)
        assert not [x for x in out if english.search(x)], name
