"""The queue page at 10,000 waiting records: every sort and a deep page, timed over real HTTP.
The timings are printed (a shared machine makes a hard limit flaky); the pages must be right."""

from __future__ import annotations

import re
import time

from web_world import BENCHMARK_QUEUE_SIZE, AirflowServer, World


def test_a_ten_thousand_record_queue_pages_on_the_server(airflow_server: AirflowServer, world: World) -> None:
    timings: dict[str, float] = {}
    first_scores: dict[str, list[str]] = {}
    with airflow_server.login("alice") as alice:
        alice.get("/ledgerlink/queue", params={"workspace": world.workspace_benchmark})  # warm up
        for sort in ("score", "amount", "age"):
            for page in (1, 150):
                started = time.perf_counter()
                response = alice.get(
                    "/ledgerlink/queue",
                    params={"workspace": world.workspace_benchmark, "sort": sort, "page": page},
                )
                timings[f"{sort} page {page}"] = time.perf_counter() - started
                assert response.status_code == 200
                assert f"{BENCHMARK_QUEUE_SIZE:,} records waiting" in response.text
                assert f"Page {page} of {BENCHMARK_QUEUE_SIZE // 50}" in response.text
                assert response.text.count('class="queue-row"') == 50
                if page == 1:
                    first_scores[sort] = re.findall(r'<span class="score">(\d+)%</span>', response.text)
    scores = [int(score) for score in first_scores["score"]]
    assert scores == sorted(scores, reverse=True)
    print(f"\nqueue page at {BENCHMARK_QUEUE_SIZE} items (seconds, over HTTP through Airflow's auth):")
    for name, seconds in timings.items():
        print(f"  {name:16} {seconds:.3f}")
