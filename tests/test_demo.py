"""The README's main job (``meta-tutor demo``) runs end to end (smoke-test size) and resumes."""

from __future__ import annotations

import json

from meta_rl.cli import main as cli_main


def test_demo_quick_end_to_end_and_rerun(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert cli_main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| maml_ppo |" in printed and "adaptation_curve.png" in printed
    res = json.loads((out / "eval" / "results.json").read_text())
    assert res["split"] == "test" and res["adapt_steps"] == 3
    first = res["methods"]["maml_ppo"]["mean"]
    # evaluate's defaults but the other meta-learners (the demo's time budget)
    assert {"maml_ppo", "pooled_ppo", "sb3_ppo", "oracle", "random"} <= set(res["methods"])
    assert not {"reptile_ppo", "mamlpp_ppo"} & set(res["methods"])
    # a second run resumes the finished training and reuses the cached baselines: same
    # numbers; --methods default adds the other meta-learners
    assert cli_main(["demo", "--quick", "--out", str(out), "--methods", "default"]) == 0
    again = json.loads((out / "eval" / "results.json").read_text())
    assert {"reptile_ppo", "mamlpp_ppo"} <= set(again["methods"])
    for name in ("maml_ppo", "pooled_ppo", "sb3_ppo"):
        assert again["methods"][name]["mean"] == res["methods"][name]["mean"]
    assert again["methods"]["maml_ppo"]["mean"] == first
