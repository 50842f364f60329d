"""The Chinese texts of jobs/reasons_text.py that `explain` and the work orders print."""

from __future__ import annotations

from jobs.reasons_text import beijing_divisions, detail_zh


def test_every_release_detail_the_rules_write_reads_in_chinese():
    assert detail_zh("verification v-9") == "社区核实记录 v-9"
    assert detail_zh("NAT sample n-late sampled 2022-05-08 12:00") == "核酸样本 n-late,5月8日 12:00 采样"
    assert (
        detail_zh("a record behind the reason changed: telecom_stays|s-1")
        == "所依据的记录已更正或撤回:telecom_stays|s-1"
    )
    assert (
        detail_zh("no longer produced under policy 2022-05b, in force from 2022-05-12 00:00")
        == "按 5月12日 00:00 起施行的政策版本 2022-05b 不再产生"
    )
    assert detail_zh("no longer produced under policy 2022-05b") == "按政策版本 2022-05b 不再产生"


def test_a_release_detail_of_an_unknown_form_is_shown_as_it_is():
    assert detail_zh("manual correction by ops") == "manual correction by ops"
    assert detail_zh(None) is None


def test_beijing_has_its_16_districts_and_their_streets_by_code():
    divisions = dict(beijing_divisions())
    districts = [c for c in divisions if len(c) == 6]
    assert len(districts) == 16 and divisions["110105"] == "朝阳区"
    assert divisions["110105001"] == "建外街道"
    assert all(c[:6] in divisions for c in divisions if len(c) == 9)
