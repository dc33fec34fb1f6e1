// Cascade's live dashboard: plain JS, no build step. Polls GET /v1/dashboard (admin) every 2 s and
// renders it; in tenant mode it asks once for an admin key, kept in sessionStorage.

(() => {
  const POLL_MS = 2000;
  const KEY_STORAGE = "cascade.dashboard.key";
  const SVG_NS = "http://www.w3.org/2000/svg";
  let openMode = false;
  let timer = null;

  const $ = (selector) => document.querySelector(selector);

  /** Builds an element; children are nodes or strings (always text, never HTML). */
  function h(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs ?? {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") element.className = value;
      else element.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  function svg(tag, attrs, ...children) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs ?? {})) element.setAttribute(name, String(value));
    for (const child of children)
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return element;
  }

  const percent = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`);
  const usd = (amount) =>
    amount === null || amount === undefined ? "–" : `$${Number(amount).toFixed(amount < 0.01 ? 6 : 4)}`;
  const time = (ms) => new Date(ms).toLocaleTimeString();
  /** A time of day for today's events, with the date for older ones. */
  const when = (ms) =>
    new Date(ms).toDateString() === new Date().toDateString() ? time(ms) : new Date(ms).toLocaleString();
  const badge = (state) => h("span", { class: `badge ${state}` }, state);

  function replaceRows(tbody, rows, emptyText, columns) {
    tbody.replaceChildren(
      ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: columns, class: "muted" }, emptyText))]),
    );
  }

  function headroom(limits) {
    if (!limits || limits.length === 0) return "no limits";
    return limits.map((limit) => `${limit.kind} ${limit.available}/${limit.capacity}`).join(", ");
  }

  function renderProviders(providers) {
    const rows = providers.map((provider) => {
      const state = provider.breaker?.state ?? "closed";
      const models = provider.models.map((model) => {
        const own = model.breaker && !model.breaker.shared_with_provider ? model.breaker.state : null;
        return h("div", {}, String(model.id), own ? [" ", badge(own)] : null);
      });
      return h(
        "tr",
        { "data-provider": provider.id },
        h("td", {}, provider.id, h("div", { class: "muted" }, provider.type)),
        h(
          "td",
          { class: "breaker", "data-state": state },
          badge(state),
          provider.breaker?.forced ? h("div", { class: "muted" }, "forced") : null,
          provider.cooldown_until
            ? h("div", { class: "muted" }, `cooling down until ${time(provider.cooldown_until * 1000)}`)
            : null,
        ),
        h("td", { class: "headroom" }, headroom(provider.limits)),
        h(
          "td",
          {},
          provider.recent
            ? `${provider.recent.errors}/${provider.recent.calls} (${percent(provider.recent.error_rate)})`
            : "–",
        ),
        h("td", {}, models),
      );
    });
    replaceRows($("#providers tbody"), rows, "no providers", 5);
  }

  /** The last hour's fallback rate per minute (bars) and requests per minute (line). */
  function chart(series) {
    const width = 600;
    const height = 120;
    const top = 8;
    const bottom = 16;
    const left = 30;
    const plot = height - top - bottom;
    const step = (width - left) / Math.max(1, series.length);
    const maxRequests = Math.max(1, ...series.map((point) => point.requests));
    const root = svg("svg", {
      class: "chart",
      viewBox: `0 0 ${width} ${height}`,
      preserveAspectRatio: "none",
      role: "img",
    });
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plot * (1 - fraction);
      root.append(svg("line", { class: "grid", x1: left, x2: width, y1: y, y2: y }));
      root.append(svg("text", { x: 0, y: y + 3 }, `${fraction * 100}%`));
    }
    const points = [];
    series.forEach((point, index) => {
      const x = left + index * step;
      if (point.fallback_rate) {
        const barHeight = plot * point.fallback_rate;
        root.append(
          svg(
            "rect",
            {
              class: "fallback-bar",
              x: x + 0.5,
              y: top + plot - barHeight,
              width: Math.max(1, step - 1),
              height: barHeight,
            },
            svg(
              "title",
              {},
              `${time(point.minute * 1000)}: ${percent(point.fallback_rate)} of ${point.requests}`,
            ),
          ),
        );
      }
      points.push(`${x + step / 2},${top + plot * (1 - point.requests / maxRequests)}`);
    });
    root.append(svg("polyline", { class: "requests-line", points: points.join(" ") }));
    root.append(svg("text", { x: left, y: height - 2 }, "-60 min"));
    root.append(svg("text", { x: width - 24, y: height - 2 }, "now"));
    return root;
  }

  function renderRoutes(routes) {
    const cards = Object.entries(routes).map(([name, route]) =>
      h(
        "div",
        { class: "card", "data-route": name },
        h("h3", {}, name),
        h(
          "div",
          { class: "stats" },
          h(
            "span",
            {},
            "fallback rate ",
            h(
              "b",
              { class: "fallback-rate", "data-value": route.fallback_rate ?? "" },
              percent(route.fallback_rate),
            ),
          ),
          h("span", {}, "requests ", h("b", { class: "requests" }, route.requests)),
          h("span", {}, "failed ", h("b", { class: "failed" }, route.failed)),
          h(
            "span",
            {},
            "cost per success ",
            h("b", { class: "cost-per-success" }, usd(route.cost_per_success_usd)),
          ),
        ),
        chart(route.series),
        h("div", { class: "muted" }, "bars: fallback rate per minute; line: requests per minute"),
      ),
    );
    $("#routes .cards").replaceChildren(
      ...(cards.length ? cards : [h("p", { class: "muted" }, "no routes")]),
    );
  }

  function renderQueue(queue) {
    const figure = (label, value, name) =>
      h("div", { "data-figure": name }, h("dt", {}, label), h("dd", {}, value));
    $("#queue dl").replaceChildren(
      figure("waiting", queue.waiting, "waiting"),
      figure("in flight", queue.in_flight, "in_flight"),
      figure("delayed", queue.delayed, "delayed"),
      figure(
        "oldest waiting",
        queue.oldest_waiting_age_s === null ? "–" : `${queue.oldest_waiting_age_s} s`,
        "oldest",
      ),
    );
  }

  function renderSpend(spend) {
    $("#spend-date").textContent = `${spend.date} UTC`;
    const rows = [...spend.tenants]
      .sort((a, b) => b.cost_usd - a.cost_usd)
      .map((entry) =>
        h(
          "tr",
          { "data-tenant": entry.tenant },
          h("td", {}, entry.tenant),
          h("td", { class: "num" }, usd(entry.cost_usd)),
        ),
      );
    replaceRows($("#spend tbody"), rows, "no tenants", 2);
  }

  function renderAlerts(alerts) {
    const list = $("#alerts ul");
    if (alerts === null) {
      list.replaceChildren(h("li", { class: "muted" }, "alerts are not available on this server"));
      return;
    }
    const active = alerts.filter((alert) => alert.state === "firing");
    list.replaceChildren(
      ...(active.length
        ? active.map((alert) =>
            h(
              "li",
              { "data-alert": alert.id },
              badge(alert.state),
              " ",
              `${alert.kind} ${alert.subject ?? ""}: ${alert.value} (threshold ${alert.threshold}) since ${when(alert.fired_at * 1000)}`,
            ),
          )
        : [h("li", { class: "muted" }, "no active alerts")]),
    );
  }

  function renderFailures(failures) {
    const rows = failures.map((failure) =>
      h(
        "tr",
        {},
        h("td", {}, when(failure.finished_at), h("div", { class: "muted" }, failure.door)),
        h("td", {}, failure.tenant),
        h("td", {}, failure.route ?? "(models)"),
        h(
          "td",
          {},
          h(
            "ol",
            { class: "attempts" },
            failure.attempts.map((attempt) =>
              h(
                "li",
                {},
                `${attempt.model}${attempt.deployment ? ` (${attempt.deployment})` : ""}: `,
                badge(attempt.outcome),
                attempt.reason ? ` ${attempt.reason}` : "",
                attempt.http_status ? ` (${attempt.http_status})` : "",
              ),
            ),
          ),
        ),
      ),
    );
    replaceRows($("#failures tbody"), rows, "no failed requests", 4);
  }

  function storedKey() {
    return sessionStorage.getItem(KEY_STORAGE);
  }

  function askForKey(message) {
    clearTimeout(timer);
    $("#panels").hidden = true;
    $("#forget-key").hidden = true;
    $("#key-form").hidden = false;
    $("#status").textContent = "an admin API key is needed";
    const error = $("#key-error");
    error.hidden = !message;
    error.textContent = message ?? "";
    $("#key").focus();
  }

  async function poll() {
    clearTimeout(timer);
    const headers = { accept: "application/json" };
    const key = storedKey();
    if (!openMode) {
      if (!key) return askForKey();
      headers.authorization = `Bearer ${key}`;
    }
    try {
      const response = await fetch("/v1/dashboard", { headers, cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        sessionStorage.removeItem(KEY_STORAGE);
        const body = await response.json().catch(() => ({}));
        return askForKey(body?.error?.message ?? "that key was refused");
      }
      if (!response.ok) throw new Error(`GET /v1/dashboard answered ${response.status}`);
      const data = await response.json();
      renderProviders(data.providers);
      renderRoutes(data.routes);
      renderQueue(data.queue);
      renderSpend(data.spend_today);
      renderAlerts(data.alerts);
      renderFailures(data.recent_failures);
      $("#key-form").hidden = true;
      $("#panels").hidden = false;
      $("#forget-key").hidden = openMode;
      $("#status").textContent = `updated ${time(data.generated_at)}${openMode ? " (open mode)" : ""}`;
      $("#status").classList.remove("error");
    } catch (error) {
      $("#status").textContent = `update failed: ${error.message}; retrying`;
      $("#status").classList.add("error");
    }
    timer = setTimeout(poll, POLL_MS);
  }

  async function start() {
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("#key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      $("#key").value = "";
      poll();
    });
    $("#forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      askForKey();
    });
    try {
      const response = await fetch("/dashboard/mode", { cache: "no-store" });
      openMode = (await response.json()).open_mode === true;
    } catch {
      openMode = false;
    }
    poll();
  }

  start();
})();
