"""The console in a real browser: sign-in, playground (streaming, function calls, code interpreter, citations),
threads and run timelines, the retrieval inspector, vector store search, usage, escaping and small screens.

Everything goes through the real server (per backend) and the scripted fake LLM; the sandbox runs the code.
Screenshots of every page are saved in the test's output folder (see conftest.Console.shot).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from fakes import Reply, ToolCallSpec
from support.sdk import vector_stores

from .conftest import ADMIN_KEY, KEY, wait_until

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 3])\nplt.title('console test')\nprint('plotted')\n"
ZEBRAS = b"Zebras have black and white stripes. The stripes help with thermoregulation and confuse biting flies."
MARS = b"Mars is the fourth planet from the sun. Its red colour comes from iron oxide dust on its surface."


def make_assistant(client, **kwargs):  # noqa: ANN001, ANN003, ANN201
    return client.beta.assistants.create(model="gpt-4o", **kwargs)


def send(console, text: str) -> None:  # noqa: ANN001
    page = console.page
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


@pytest.fixture(scope="module")
def knowledge(server):  # noqa: ANN001, ANN201
    """A vector store with two small files, ingested, shared by the retrieval tests of a module."""
    from support.sdk import make_client

    client = make_client(server.base_url, api_key=KEY)
    stores = vector_stores(client)
    files = [
        client.files.create(file=("zebras.txt", ZEBRAS), purpose="assistants"),
        client.files.create(file=("mars.txt", MARS), purpose="assistants"),
    ]
    store = stores.create(name="Animals and planets", file_ids=[f.id for f in files])
    wait_until(lambda: stores.retrieve(store.id).file_counts.completed == 2, what="ingestion")
    yield store
    client.close()


def test_wrong_key_is_refused_then_sign_in_with_keyboard(browser, server, shots, backend):  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.root_url + "/")
        key = page.get_by_label("API key")
        key.fill("sk-wrong-key-0000")
        key.press("Enter")
        alert = page.get_by_role("alert")
        assert "Incorrect API key provided" in alert.text_content()
        assert page.locator("#nav").is_hidden()
        page.screenshot(path=str(shots / f"{backend}-signin-refused.png"))
        key.fill(KEY)
        key.press("Enter")  # keyboard only
        page.wait_for_selector("main h1:has-text('Playground')")
        assert page.locator("#nav").is_visible()
        assert page.evaluate("sessionStorage.getItem('threadline.console.key')") == KEY
        # Signing out forgets the key and returns to the sign-in form.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("form.signin")
        assert page.evaluate("sessionStorage.getItem('threadline.console.key')") is None
    finally:
        context.close()


def test_console_page_needs_no_key_but_its_api_does(server, api):  # noqa: ANN001
    import httpx

    page = httpx.get(server.root_url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(server.root_url + "/console/js/app.js").status_code == 200
    refused = httpx.get(server.base_url + "/console/threads", headers={"Authorization": "Bearer nope-nope-nope"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert api.get("/console/session").json()["auth"] == "api_key"


def test_create_assistant_and_stream_a_reply(console, client, fake_llm):  # noqa: ANN001
    page = console.page
    console.go("#/playground")
    console.assert_labelled()
    page.get_by_label("Name", exact=True).fill("Streaming helper")
    model = page.get_by_label("Model", exact=True)
    # GET /v1/models may not exist on this server: then the model is a text field, else a picker.
    if model.evaluate("el => el.tagName") == "SELECT":
        model.select_option(index=0)
    else:
        model.fill("gpt-4o")
    page.get_by_label("Instructions").fill("Be brief.")
    page.get_by_role("button", name="Create assistant").click()
    page.wait_for_url(re.compile(r"#/playground/asst_"))
    page.wait_for_selector("summary:has-text('Edit this assistant')")
    assistant_id = page.url.rsplit("/", 1)[1]
    created = client.beta.assistants.retrieve(assistant_id)
    assert created.name == "Streaming helper" and created.instructions == "Be brief."

    words = "Streaming works: one word at a time from the fake model"
    fake_llm.script(Reply(text=words, tokens_per_s=5))
    send(console, "Say something")
    # Part of the reply is on the page while the run is still going...
    read_live = "() => { const el = document.querySelector('.message.streaming .text'); return el && el.textContent; }"
    partial = wait_until(lambda: page.evaluate(read_live), what="a partial reply")
    assert words.startswith(partial) and partial != words
    # ...then the stored message replaces it.
    page.wait_for_selector(f".message-assistant:not(.streaming) .text:has-text('{words}')")
    page.wait_for_selector(".run-status .badge-completed")
    console.shot("playground")


def test_function_call_output_submitted_from_the_form(console, client, fake_llm):  # noqa: ANN001
    page = console.page
    weather = {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    assistant = make_assistant(client, name="Weather", tools=[{"type": "function", "function": weather}])
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}')]),
        Reply(text="It is sunny in Paris."),
    )
    console.go(f"#/playground/{assistant.id}")
    send(console, "Weather in Paris?")
    form = page.locator("form.function-form")
    form.wait_for()
    assert "get_weather" in form.text_content() and '"city": "Paris"' in form.text_content()
    console.assert_labelled()
    console.shot("function-call")
    page.get_by_label(re.compile("Output of get_weather")).fill('{"sky": "sunny"}')
    page.get_by_role("button", name="Submit tool outputs").click()
    page.wait_for_selector(".message-assistant .text:has-text('It is sunny in Paris.')")
    tool_message = fake_llm.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == '{"sky": "sunny"}'


def test_code_interpreter_code_logs_and_image(console, client, fake_llm):  # noqa: ANN001
    page = console.page
    assistant = make_assistant(client, name="Analyst", tools=[{"type": "code_interpreter"}])
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": PLOT}))]),
        Reply(text="Here is the plot."),
    )
    console.go(f"#/playground/{assistant.id}")
    send(console, "Plot something")
    call = page.locator(".tool-call[data-type=code_interpreter]")
    call.wait_for(timeout=60_000)
    assert "plt.plot" in call.locator("pre.code").text_content()
    assert call.locator("pre.logs").text_content().strip() == "plotted"
    page.wait_for_selector(".message-assistant .text:has-text('Here is the plot.')")
    image = page.locator(".message-assistant img.output-image").first
    wait_until(lambda: image.evaluate("img => img.complete && img.naturalWidth > 100"), what="the image to load")
    console.shot("code-interpreter")


def test_file_search_citation_opens_the_retrieval_inspector(console, client, fake_llm, knowledge):  # noqa: ANN001
    page = console.page
    assistant = make_assistant(
        client,
        name="Librarian",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [knowledge.id]}},
    )
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", json.dumps({"queries": ["zebra stripes"]}))]),
        Reply(text="Their stripes help with thermoregulation 【0†zebras.txt】."),
    )
    console.go(f"#/playground/{assistant.id}")
    send(console, "Why do zebras have stripes?")
    citation = page.locator("a.citation")
    citation.wait_for()
    assert citation.text_content() == "[0: zebras.txt]"
    console.shot("file-search-answer")
    citation.click()
    page.wait_for_selector("main h1:has-text('Retrieval inspector')")
    row = page.locator("tr#result-0")
    assert "cited" in row.get_attribute("class") and "highlight" in row.get_attribute("class")
    cells = row.locator("td").all_text_contents()
    assert cells[1].startswith("zebras.txt") and cells[3] == "zebra stripes"
    keyword, vector, fused = (float(x) for x in cells[4:7])
    assert 0 < keyword <= 1 and 0 < vector <= 1 and 0 < fused <= 1
    assert "Zebras have black and white stripes" in cells[8]
    assert page.locator("q").first.text_content() == "zebra stripes"
    console.assert_labelled()
    console.shot("retrieval-inspector")


def test_run_timeline(console, client, fake_llm, knowledge):  # noqa: ANN001
    page = console.page
    assistant = make_assistant(
        client, tools=[{"type": "file_search"}], tool_resources={"file_search": {"vector_store_ids": [knowledge.id]}}
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What colour is Mars?"}])
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", json.dumps({"queries": ["Mars colour"]}))]),
        Reply(text="Red, from iron oxide 【0†mars.txt】."),
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    # The step's file_search call carries the score components and queries (extra fields the spec allows: the
    # validating client checks the step against OpenAI's schema).
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    search = steps[0].step_details.tool_calls[0].file_search.model_dump()
    assert search["queries"] == ["Mars colour"]
    top = search["results"][0]
    assert top["file_name"] == "mars.txt" and top["query"] == "Mars colour" and top["chunk_index"] == 0
    assert 0 < top["vector_score"] <= 1 and 0 < top["keyword_score"] <= 1 and top["content"] is None
    console.go(f"#/threads/{thread.id}")
    page.locator(f"a[href='#/threads/{thread.id}/runs/{run.id}']").first.click()
    page.wait_for_selector(f"main h1:has-text('{run.id}')")
    timeline = page.locator("ol.timeline")
    labels = timeline.locator("li.event .badge").all_text_contents()
    assert labels == ["queued", "in_progress", "completed"]
    steps = timeline.locator("li.step")
    assert steps.count() == 2
    assert steps.nth(0).get_attribute("data-step-type") == "tool_calls"
    assert "tokens:" in steps.nth(1).locator(".usage").text_content()
    assert f"{run.usage.total_tokens} total" in page.locator("dl.facts").text_content()
    console.shot("run-timeline")


def test_failed_run_shows_last_error(console, client, fake_llm):  # noqa: ANN001
    page = console.page
    assistant = make_assistant(client)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    fake_llm.script(*[Reply(error=400, message="The model rejected this.")] * 3)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "failed"
    console.go(f"#/threads/{thread.id}/runs/{run.id}")
    assert page.locator("ol.timeline li.event .badge").all_text_contents()[-1] == "failed"
    assert run.last_error.code in page.locator("ol.timeline").text_content()


def test_vector_store_search_shows_component_scores(console, knowledge):  # noqa: ANN001
    page = console.page
    console.go(f"#/vector_stores/{knowledge.id}")
    files = page.locator("table").first
    assert "zebras.txt" in files.text_content() and "completed" in files.text_content()
    chunks = [int(c) for c in files.locator("tbody tr td:nth-child(3)").all_text_contents()]
    assert chunks == [1, 1]
    page.get_by_label("Query", exact=True).fill("red planet iron oxide")
    page.get_by_role("button", name="Search").click()
    first = page.locator(".search-results tbody tr").first
    first.wait_for()
    cells = first.locator("td").all_text_contents()
    assert cells[1].startswith("mars.txt")
    assert all(0 <= float(x) <= 1 for x in cells[3:6])
    console.assert_labelled()
    console.shot("vector-store-search")
    # Filters reach the search: nothing has this attribute.
    page.get_by_label("Filters (JSON)").fill('{"type": "eq", "key": "author", "value": "nobody"}')
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector(".search-results:has-text('No results.')")


def test_files_page_uploads_with_progress(console, tmp_path):  # noqa: ANN001
    page = console.page
    console.go("#/files")
    doc = tmp_path / "notes.txt"
    doc.write_bytes(b"Console upload test. " * 300)
    page.get_by_label("File", exact=True).set_input_files(str(doc))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("main td:has-text('notes.txt')")
    console.assert_labelled()
    console.shot("files")
    # A new store, then the uploaded file added to it from the store's page; the page follows the ingestion.
    page.get_by_label("Name", exact=True).fill("Notes store")
    page.get_by_role("button", name="Create vector store").click()
    page.wait_for_selector("main h1:has-text('Notes store')")
    notes = page.locator("select[name=file_id] option", has_text="notes.txt").first.get_attribute("value")
    page.get_by_label("File to add").select_option(notes)
    page.get_by_role("button", name="Add file").click()
    row = page.locator("main table tbody tr:has-text('notes.txt')")
    wait_until(lambda: row.count() and "completed" in row.first.text_content(), what="ingestion shown as completed")
    assert int(row.first.locator("td").nth(2).text_content()) >= 1  # chunks
    console.shot("vector-store")


def test_usage_and_cost_page(console, client, fake_llm, api, server):  # noqa: ANN001
    """Spend on the page is the test price file applied to the run's tokens, and the day's total equals
    /v1/organization/costs for the same project and days."""
    import httpx

    page = console.page
    assistant = make_assistant(client, name="Usage")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count my tokens"}])
    # 120,000 in at $1,000/M + 30,000 out at $2,000/M = $120 + $60: more than any other run of the module.
    fake_llm.script(Reply(text="Counted.", prompt_tokens=120_000, completion_tokens=30_000))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.usage.total_tokens == 150_000
    usage = api.get("/console/usage", params={"days": 7}).json()
    assert usage["cost_available"] is True and "gpt-4o" not in usage["unpriced_models"]
    mine = [b for b in usage["buckets"] if b["assistant_id"] == assistant.id]
    assert len(mine) == 1 and mine[0]["model"] == "gpt-4o" and mine[0]["kind"] == "completion"
    tokens = (mine[0]["prompt_tokens"], mine[0]["completion_tokens"], mine[0]["total_tokens"])
    assert tokens == (120_000, 30_000, 150_000)
    assert mine[0]["cost"] == pytest.approx(180.0) and mine[0]["project_id"] == "proj_default"
    assert mine[0]["day"] <= run.created_at < mine[0]["day"] + 86_400
    top = usage["top_runs"][0]
    assert (top["id"], top["thread_id"], top["status"]) == (run.id, thread.id, "completed")
    assert top["cost"] == pytest.approx(180.0) and top["usage"]["total_tokens"] == 150_000
    assert usage["top_threads"][0]["thread_id"] == thread.id and usage["top_threads"][0]["cost"] == pytest.approx(180.0)
    # The same days through OpenAI's costs endpoint (an admin key) give the same total, to the cent's millionth.
    costs = httpx.get(
        server.base_url + "/organization/costs",
        params={"start_time": usage["start"], "end_time": usage["end"], "limit": 7, "group_by": ["project_id"]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    amounts = [r["amount"]["value"] for b in costs["data"] for r in b["results"] if r["project_id"] == "proj_default"]
    assert sum(amounts) == pytest.approx(usage["total_cost"], abs=1e-6) and usage["total_cost"] >= 180.0

    console.go("#/usage")
    assert page.locator("svg.chart").count() == 2 and page.locator("svg.chart rect").count() >= 2
    assert page.locator("h2", has_text="Spend per day by model (USD)").count() == 1
    assert page.locator("tr[data-group='gpt-4o'] td.spend").text_content().startswith("$18")
    run_row = page.locator(f"tr:has(a[href='#/threads/{thread.id}/runs/{run.id}'])")
    assert run_row.locator("td.spend").text_content() == "$180.00"
    assert page.locator(f"tr:has(a[href='#/threads/{thread.id}']) td.spend").first.text_content() == "$180.00"
    page.get_by_label("Group by").select_option("assistant")
    page.get_by_role("button", name="Show").click()
    row = page.locator(f"tr[data-group='Usage ({assistant.id})']")
    row.wait_for()
    assert row.locator("td.spend").text_content() == "$180.00"
    assert row.locator("td.tokens").text_content() == "150,000"
    console.assert_labelled()
    console.shot("usage")
    page.get_by_label("Group by").select_option("project")
    page.get_by_role("button", name="Show").click()
    page.wait_for_selector("main h2:has-text('Spend per day by project')")
    assert page.locator("main td.spend").first.text_content() == page.locator("dd.total-spend").text_content()

    # The most expensive run links to its timeline, which prices each step and each model call.
    page.get_by_role("link", name=run.id).first.click()
    page.wait_for_selector(f"main h1:has-text('{run.id}')")
    assert page.locator("dd.run-cost").text_content().startswith("$180.00")
    assert page.locator("li.step .step-cost").all_text_contents() == ["$180.00"]
    console.shot("run-cost")
    turn = page.locator("main table").last.locator("tbody tr")
    assert turn.count() == 1 and turn.locator("td").last.text_content() == "$180.00"


def test_responses_api_traffic_is_counted(console, api, fake_llm):  # noqa: ANN001
    """A Responses-API call is spend too: in the daily buckets (no assistant) and among the costliest."""
    fake_llm.script(Reply(text="Answered.", prompt_tokens=50_000, completion_tokens=10_000))
    response = api.post("/responses", json={"model": "gpt-4o", "input": "What does this cost?"})
    assert response.status_code == 200, response.text
    response_id = response.json()["id"]
    usage = api.get("/console/usage", params={"days": 7}).json()
    top = {r["id"]: r for r in usage["top_runs"]}
    assert top[response_id]["object"] == "response" and top[response_id]["cost"] == pytest.approx(70.0)
    assert top[response_id]["usage"]["total_tokens"] == 60_000 and top[response_id]["status"] == "completed"
    no_assistant = [b for b in usage["buckets"] if b["kind"] == "completion" and b["assistant_id"] is None]
    assert sum(b["cost"] for b in no_assistant) >= 70.0
    console.go("#/usage?by=assistant")
    row = console.page.locator("tr[data-group='(no assistant: Responses API)']")
    assert row.locator("td.spend").text_content().startswith("$7")
    listed = console.page.locator(f"tr:has-text('{response_id}')")
    assert listed.locator("td.spend").text_content() == "$70.00"


def test_run_cost_counts_tools_and_steps(api, client, fake_llm, knowledge):  # noqa: ANN001
    """A run with a file_search call: each step priced at the run's model, the call at the tool price."""
    assistant = make_assistant(
        client, tools=[{"type": "file_search"}], tool_resources={"file_search": {"vector_store_ids": [knowledge.id]}}
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Zebras?"}])
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", json.dumps({"queries": ["zebra"]}))], prompt_tokens=1000),
        Reply(text="Stripes.", prompt_tokens=2000, completion_tokens=500),
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    cost = api.get(f"/console/threads/{thread.id}/runs/{run.id}/cost").json()
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    expected = [(s.usage.prompt_tokens * 1000 + s.usage.completion_tokens * 2000) / 1e6 for s in steps]
    assert [cost["steps"][s.id]["cost"] for s in steps] == pytest.approx(expected)
    assert cost["tools"] == [
        {
            "kind": "file_search_call",
            "line_item": "file search tool calls",
            "quantity": 1,
            "quantity_unit": "calls",
            "cost": 0.5,
        }
    ]
    assert cost["cost"]["models"] == pytest.approx(sum(expected))
    assert cost["cost"]["total"] == pytest.approx(sum(expected) + 0.5)
    assert len(cost["turns"]) == 2 and cost["price"]["source"] == "file"
    other = client.beta.threads.create()
    missing = api.get(f"/console/threads/{other.id}/runs/{run.id}/cost")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == f"No run found with id '{run.id}'."


def test_threads_list_search_and_pagination(console, client, api):  # noqa: ANN001
    page = console.page
    thread = client.beta.threads.create(metadata={"customer": "acme-42"})
    for i in range(60):  # more than a page
        api.post(f"/threads/{thread.id}/messages", json={"role": "user", "content": f"message number {i}"})
    console.go("#/threads")
    page.get_by_label("Metadata key").fill("customer")
    page.get_by_label("Metadata value").fill("acme-42")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile("metadata_key=customer"))
    rows = page.locator("main tbody tr")
    wait_until(lambda: rows.count() == 1, what="the filtered list")
    assert thread.id in rows.first.text_content()
    assert "60" in rows.first.text_content()
    console.shot("threads")
    started = time.monotonic()
    rows.first.locator("a").click()
    page.wait_for_selector(".messages article")
    opened_s = time.monotonic() - started
    assert page.locator(".messages article").count() == 50  # a page, not the whole thread
    page.get_by_role("button", name="Load more messages").click()
    wait_until(lambda: page.locator(".messages article").count() == 60, what="the second page")
    page.get_by_role("link", name="Show newest first").click()
    newest = page.locator(".messages article .text").first
    wait_until(lambda: newest.count() and newest.text_content() == "message number 59", what="newest first")
    assert opened_s < 10  # generous: the point is pagination, measured in docs/console.md


def test_user_content_is_escaped(console, client):  # noqa: ANN001
    page = console.page
    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold?</b>'
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": evil}], metadata={"note": "<img src=y onerror=alert(1)>"}
    )
    client.beta.assistants.create(model="gpt-4o", name='<svg onload="window.__pwned = 3">')
    for path in (f"#/threads/{thread.id}", "#/threads", "#/assistants", "#/playground"):
        console.go(path)
        page.wait_for_timeout(200)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main img[src=x], main img[src=y], main b, main svg[onload]").count() == 0
    console.go(f"#/threads/{thread.id}")
    assert page.locator(".messages .text").first.text_content() == evil
    console.shot("escaping")


@pytest.mark.parametrize("path", ["#/playground", "#/threads", "#/usage"])
def test_phone_width(console, path):  # noqa: ANN001
    page = console.page
    page.set_viewport_size({"width": 375, "height": 800})
    console.go(path)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at 375px"
    if path == "#/playground":
        console.shot("phone-playground")
    if path == "#/usage":
        console.shot("phone-usage")


def test_search_extension_keeps_the_openai_shape(spec_http, api, knowledge):  # noqa: ANN001
    body = {"query": "zebra stripes", "max_num_results": 5}
    plain = spec_http.post(f"/vector_stores/{knowledge.id}/search", json=body).json()  # validated: no extra fields
    assert "keyword_score" not in plain["data"][0]
    explained = api.post(f"/vector_stores/{knowledge.id}/search", params={"explain": "true"}, json=body).json()
    top = explained["data"][0]
    assert top["filename"] == "zebras.txt" and top["score"] == plain["data"][0]["score"]
    assert 0 < top["keyword_score"] <= 1 and 0 < top["vector_score"] <= 1 and top["query"] == "zebra stripes"
    weight = explained["ranking"]["hybrid_vector_weight"]
    assert abs(weight * top["vector_score"] + (1 - weight) * top["keyword_score"] - top["score"]) < 1e-4
    stats = api.get(f"/vector_stores/{knowledge.id}/stats").json()
    assert sorted(f["chunk_count"] for f in stats["files"]) == [1, 1]


def test_console_threads_filters(api, client, fake_llm):  # noqa: ANN001
    """The thread search behind the Threads page: id prefix (LIKE wildcards are literal), assistant, metadata,
    dates, cursor pagination and the per-thread summaries. (Its bad input is in tests/sdk/test_bad_input.py.)"""
    assistant = make_assistant(client)
    tagged = client.beta.threads.create(metadata={"team": 'O\'Brien "quoted"'})
    ran = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    fake_llm.script(Reply(text="ok", prompt_tokens=7, completion_tokens=3))
    run = client.beta.threads.runs.create_and_poll(thread_id=ran.id, assistant_id=assistant.id, poll_interval_ms=50)

    def ids(**params: object) -> list[str]:
        response = api.get("/console/threads", params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["data"]]

    assert ids(q="%") == [] and ids(q="thread\\_") == [] and ids(q=tagged.id[:-1]) == [tagged.id]
    assert ids(metadata_key="team", metadata_value='O\'Brien "quoted"') == [tagged.id]
    assert ids(metadata_key="team", metadata_value="O'Brien") == []
    assert ids(assistant_id=assistant.id) == [ran.id]
    assert ids(assistant_id="asst_none") == []
    assert tagged.id in ids(created_after=tagged.created_at, limit=100)
    assert ids(created_before="2000-01-01") == []
    summary = api.get("/console/threads", params={"q": ran.id}).json()["data"][0]
    assert summary["message_count"] == 2 and summary["run_count"] == 1
    assert summary["last_run"]["id"] == run.id and summary["assistant_ids"] == [assistant.id]
    assert summary["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    first = api.get("/console/threads", params={"limit": 1}).json()
    assert first["has_more"] and first["data"][0]["id"] == ran.id
    second = api.get("/console/threads", params={"limit": 1, "after": first["last_id"]}).json()
    assert second["data"][0]["id"] == tagged.id
