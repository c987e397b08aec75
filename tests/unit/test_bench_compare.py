"""The benchmark's `--compare`: two runs' figures side by side, for a note's before/after."""

from scripts.bench_pipeline import compare


def result(records, wall, merge, peak, runs=("first",), probe=0.1):
    return {"records": records, "probe_s": {"before": probe},
            "runs": [{"run": r, "wall_s": wall, "to_geojson_s": wall - 1, "peak_rss_mib": peak,
                      "together_mib": peak + 100, "steps": {"merge": {"seconds": merge}}}
                     for r in runs]}


def test_each_size_and_run_found_in_both_shows_before_arrow_after_with_the_change():
    table = compare([result(1000, 20.0, 10.0, 600), result(10000, 50.0, 30.0, 900)],
                    [result(1000, 15.0, 5.0, 660)])
    rows = [line for line in table.splitlines() if line.startswith("| 1,")]
    assert len(rows) == 1  # 10,000 was not run again
    cells = [c.strip() for c in rows[0].split("|")]
    assert cells[3] == "20.0 → 15.0 (-25%)"
    assert cells[5] == "600 → 660 (+10%)"
    assert "10.0 → 5.0 (-50%)" in cells
    assert "1,000: 0.100 → 0.100" in table


def test_a_run_missing_on_one_side_and_tenths_of_seconds_show_no_change_share():
    before = [result(1000, 0.4, 0.2, 600, runs=("first", "unchanged"))]
    after = [result(1000, 0.8, 0.3, 600, runs=("first", "1% edited"))]
    table = compare(before, after)
    assert "unchanged" not in table and "edited" not in table
    assert "0.4 → 0.8 |" in table  # no "(+100%)" on a few tenths of a second


def test_the_markdown_shows_each_steps_peak_memory_with_the_forked_processes():
    from scripts.bench_pipeline import markdown

    run = {"run": "first", "wall_s": 10.0, "to_geojson_s": 8.0, "peak_rss_mib": 900,
           "forked_private_mib": 700, "together_mib": 1500,
           "steps": {"merge": {"seconds": 4.0, "memory": {"rss_mib": 900, "forked_mib": 700,
                                                          "together_mib": 1500}},
                     "publish": {"seconds": 2.0, "memory": {"rss_mib": 800, "forked_mib": 0,
                                                            "together_mib": 800}},
                     "site": {"seconds": 0.1, "memory": None}}}
    table = markdown([{"records": 1000, "runs": [run], "candidate_pairs": 10,
                       "precision": 1.0, "recall": 1.0}])
    memory = table.split("Peak memory per step")[1]
    row = next(line for line in memory.splitlines() if line.startswith("| 1,000 | first"))
    assert "| 900 + 700 (1,500) |" in row and "| 800 |" in row
