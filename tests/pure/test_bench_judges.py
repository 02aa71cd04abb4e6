"""The benches' own judges can fail: the hit-rate bench counts an answer outside the record in force as a miss."""

from bench.hit_rate import judge


def test_an_answer_is_judged_against_the_record_in_force_when_it_was_sent():
    moves = [(10.0, 11.0, "1", "2"), (20.0, 20.5, "2", "3")]  # (record written, every replica serving, from, to)
    answers = [(5.0, 0, "1", 200),     # before any move: the first version
               (10.5, 1, "1", 200),    # in the swap window: either
               (10.6, 2, "2", 200),
               (12.0, 0, "1", 200),    # after every replica swapped: the old version is a miss
               (20.2, 1, "3", 200),
               (25.0, 2, "2", 200),    # a miss: 3 was in force
               (25.0, 2, None, 503)]   # a failed request is not judged here (the bench counts it as failed)
    hits, misses = judge(answers, moves, "1")
    assert hits == 4
    assert [(m["answered"], m["expected"]) for m in misses] == [("1", ["2"]), ("2", ["3"])]


def test_the_requirements_table_reads_each_figure_from_its_bench_and_can_say_missed():
    from bench.requirements import read_figures

    multiclass = ("  total, make dev to served class probabilities                146.3 s   0.08x the 30-minute goal\n"
                  "  log coverage: 5 of 5 runs and 4 of 5 steps log start, outcome and (failed) error: 90.00% (goal)\n")
    hit_rate = ("availability: 97950 of 97950 answered = 1.000000 (goal >= 0.9999: met)\n"
                "version hit rate: 97940 of 97950 = 0.999898 (goal >= 0.9999: MISSED)\n")
    concurrency = ("machine CPU use while the 6 ran at once: 71% of 2 cores (the requirements ask >= 60 %)\n"
                   "throughput, concurrent / serial: 1.30x; other runs during the passes: 0, 0\n"
                   "every pipeline ran once per pass, every partition materialised once, no limit exceeded\n")
    figures = read_figures(multiclass=multiclass, hit_rate=hit_rate, concurrency=concurrency)
    assert figures["online"].met and figures["online"].value.startswith("2.4 min")
    assert figures["logs"].met is False and figures["logs"].value.startswith("90.00 %")
    assert figures["available"].met and figures["hits"].met is False
    assert figures["flows"].met is False and figures["flows"].value.startswith("6 queued at once, 1.30x")
    assert figures["cpu"].met and figures["cpu"].value == "71 % of the machine"
    assert all(f.met is None for f in read_figures(multiclass="", hit_rate="", concurrency="").values())
