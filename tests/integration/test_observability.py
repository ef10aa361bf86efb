"""Metrics, dashboards and alerts (issue 15): Tollgate's series exist at zero from startup, budget
gauges follow spending, and examples/observability/'s Grafana dashboard and Prometheus rules
are checked against a real Prometheus (Debian's `prometheus`, installed by `make test`)
scraping a test Envoy under traffic."""
import hashlib
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from decimal import Decimal

import pytest
import yaml

from harness import Envoy, ROOT, free_port, load_config, plugin_config, point_static_clusters, set_plugin_config, wait_until

EXAMPLE = ROOT / "examples/observability"
RULES = EXAMPLE / "prometheus/alerts.yml"
DASHBOARD = EXAMPLE / "grafana/dashboards/tollgate.json"
ALICE, BOB, ADMIN, SMALL = "tg-alice-demo-key", "tg-bob-demo-key", "tg-admin-demo-key", "tg-small-obs-key"
# A comparison with a number at the end of an alert expression: what is left is its signal.
THRESHOLD = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*[\d.e+-]+\s*$")
METRIC = re.compile(r"\b((?:tollgate|envoy)_[a-z0-9_]+)\b")


def auth(key):
    return {"authorization": f"Bearer {key}"}


def user(text):
    return {"role": "user", "content": text}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def exported(envoy) -> dict[str, float]:
    """Every sample line of Envoy's Prometheus output: series (name and labels) → value."""
    out = {}
    for line in envoy.admin("/stats/prometheus").splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    """The virtual-keys example, plus a key with a small budget, a dear model and a route whose
    first target fails (for the breaker and error panels)."""
    cfg = load_config("examples/virtual-keys-and-budgets/envoy.yaml")
    point_static_clusters(cfg, mock.port)
    plugin = plugin_config(cfg)
    plugin["auth"]["keys"].append({"id": "small", "sha256": hashlib.sha256(SMALL.encode()).hexdigest(), "budget": {"daily_usd": "0.01"}})
    plugin["models"]["dear"] = {"provider": "openai"}
    plugin["prices"]["dear"] = {"input": "1", "output": "1000"}  # the output costs
    plugin["routes"] = [{"name": "flaky", "match": {"models": ["flaky"]},
                         "targets": [{"provider": "openai", "model": "flaky"}, {"provider": "anthropic", "model": "steady"}]}]
    plugin["breaker"] = {"consecutive_failures": 2, "cooldown_seconds": 600}
    set_plugin_config(cfg, plugin)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("observability"), concurrency=2)
    envoy.at_startup = exported(envoy)
    yield envoy
    envoy.stop()


def test_every_configured_model_has_its_series_at_zero_before_any_request(gw):
    zero = gw.at_startup
    pairs = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5-20250929"), ("openai", "dear"),
             ("openai", "flaky"), ("anthropic", "steady")]
    for provider, model in pairs:
        labels = f'gen_ai_provider_name="{provider}",gen_ai_request_model="{model}"'
        for series in [f'tollgate_requests{{{labels},http_status="200"}}', f'tollgate_requests{{{labels},http_status="503"}}',
                       f'tollgate_cost_nano_usd{{{labels}}}',
                       f'tollgate_gen_ai_client_token_usage{{{labels},gen_ai_token_type="output"}}',
                       f'tollgate_breaker_opened{{{labels}}}', f'tollgate_fallbacks{{{labels}}}',
                       f'tollgate_gen_ai_server_time_to_first_token_ms_count{{{labels}}}']:
            assert zero.get(series) == 0, f"{series} at startup: {zero.get(series)}"
    assert zero.get('tollgate_rejections{http_status="401"}') == 0
    # Label values come from the configuration only: no series for a model nobody configured.
    assert not any("gen_ai_request_model=\"gpt-3" in s for s in zero)


def test_budget_gauges_give_limit_spent_and_remaining_per_capped_scope(gw):
    labels = 'budget_scope="key",budget_name="small",budget_period="daily"'
    assert gw.at_startup[f"tollgate_budget_limit_nano_usd{{{labels}}}"] == 10_000_000
    assert gw.at_startup[f"tollgate_budget_spent_nano_usd{{{labels}}}"] == 0
    assert gw.at_startup[f"tollgate_budget_remaining_nano_usd{{{labels}}}"] == 10_000_000
    assert gw.at_startup['tollgate_budget_limit_nano_usd{budget_scope="team",budget_name="research",budget_period="monthly"}'] == 20e9
    assert not any('budget_name="bob"' in s for s in gw.at_startup), "bob has no budget"
    r = gw.chat({"model": "dear", "messages": [user("spend")]}, auth(SMALL))
    assert r.status == 200, r.body
    report = gw.request("GET", "/v1/tollgate/usage", headers=auth(ADMIN)).json()
    spent_nano = int(Decimal(report["scopes"]["keys"]["small"]["today"]["cost_usd"]) * 10**9)
    assert spent_nano > 0
    wait_until(lambda: exported(gw)[f"tollgate_budget_spent_nano_usd{{{labels}}}"] == spent_nano, 3, "the spent gauge")
    assert exported(gw)[f"tollgate_budget_remaining_nano_usd{{{labels}}}"] == 10_000_000 - spent_nano


def test_the_alert_rules_pass_promtool():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_every_metric_a_panel_or_rule_names_is_exported(gw):
    names = {series.partition("{")[0] for series in exported(gw)}
    queries = [expr for _, expr in panel_queries()] + [rule["expr"] for rule in rules()]
    named = {m for q in queries for m in METRIC.findall(q)}
    assert named, "the dashboard and rules name metrics"
    assert named <= names, f"not exported: {sorted(named - names)}"


# ---- a real Prometheus -------------------------------------------------------------------------

class Prometheus:
    def __init__(self, workdir, envoy):
        self.port = free_port()
        rules_path = workdir / "alerts.yml"
        shutil.copy(RULES, rules_path)
        config = yaml.safe_load((EXAMPLE / "prometheus/prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(rules_path)]
        config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{envoy.admin_port}"]}]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=(workdir / "prometheus.log").open("w"))
        wait_until(lambda: self.api("/api/v1/targets")["data"]["activeTargets"][0]["health"] == "up", 30, "prometheus scraping envoy")

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def query(self, expr: str) -> list:
        body = self.api("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def prometheus(gw, mock, tmp_path_factory):
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), gw)
    # Traffic for every panel: answers, streams (time to first token), refusals, provider
    # errors, a breaker that opens, and a budget past 80 %.
    for _ in range(3):
        assert gw.chat({"model": "gpt-4o-mini", "messages": [user("hi")]}, auth(ALICE)).status == 200
        assert gw.stream({"model": "claude-sonnet", "stream": True, "messages": [user("hi")]}, auth(ALICE)).status == 200
    assert gw.chat({"model": "gpt-4o-mini", "messages": [user("hi")]}).status == 401
    for _ in range(3):
        assert gw.chat({"model": "flaky", "messages": [user("hi")]}, {**auth(BOB), "x-mock-status": "503"}).status == 503
    for _ in range(50):
        if gw.chat({"model": "dear", "messages": [user("spend")]}, auth(SMALL)).status != 200:
            break
    # Envoy has the counters within a second; Prometheus then needs two scrapes for rate().
    wait_until(lambda: prom.query("sum(increase(tollgate_breaker_opened[1m])) > 0"), 20, "the breaker opening in prometheus")
    yield prom
    prom.stop()


@pytest.mark.parametrize("title,expr", panel_queries(), ids=[f"{t} {i}" for i, (t, _) in enumerate(panel_queries())])
def test_every_dashboard_query_returns_data(prometheus, title, expr):
    result = wait_until(lambda: prometheus.query(expr), 10, f"data for {title!r}")
    assert result


@pytest.mark.parametrize("rule", rules(), ids=[r["alert"] for r in rules()])
def test_every_alert_signal_returns_data(prometheus, rule):
    signal = THRESHOLD.sub("", rule["expr"])
    assert signal != rule["expr"], f"{rule['alert']}: ends in a comparison with a threshold"
    assert wait_until(lambda: prometheus.query(signal), 10, f"data for {rule['alert']}")


@pytest.mark.parametrize("alert", ["TollgateBudget80Percent", "TollgateProviderErrors", "TollgateBreakerOpened"])
def test_alerts_go_off_under_their_conditions(prometheus, alert):
    """Firing, or pending for a rule with `for:` (its duration is longer than a test)."""
    def states():
        return {a["labels"]["alertname"]: a["state"] for a in prometheus.api("/api/v1/alerts")["data"]["alerts"]}
    state = wait_until(lambda: states().get(alert), 15, f"alert {alert}")
    assert state in ("pending", "firing")
