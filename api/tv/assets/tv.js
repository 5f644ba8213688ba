// The TV page: a display key's contests, live, full screen. Hand-written, no framework.
// The key comes from the URL fragment (#key=cbd_...), which browsers never send to a server
// or put in a Referer; it is sent only as the Authorization of our own GraphQL requests.
// Transport: GraphQL over HTTP for the screen's contests and winners, graphql-transport-ws
// for the live boards. On any drop the page reconnects with capped, jittered backoff and
// resubscribes: the first message of a subscription is a fresh snapshot, so it resumes
// with the latest board.
"use strict";
(function () {
  const ROWS = 10;
  const SCREEN = `query { screen { label rotateSeconds contests {
    id name status startsAt endsAt metric currency
    prizes { fromRank toRank prize amount { formatted } }
    periods { key startsAt endsAt } } } }`;
  const WINNERS = `query { screen { contests { id winners {
    rank score prize prizeAmount { formatted } participant { id name } } } } }`;
  const LIVE = `subscription($id: ID!) { leaderboardChanged(contestId: $id, first: ${ROWS}) {
    contestId version status period final
    rows { rank score gapToAbove participant { id name } } } }`;
  const FATAL = new Set(["INVALID_DISPLAY_KEY", "DISPLAY_KEY_REVOKED", "DISPLAY_KEY_EXPIRED",
    "VENDOR_SUSPENDED", "DISPLAY_KEY_SCOPE"]);

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get("key");
  const state = {
    contests: [], // from `screen`, in rotation order
    boards: {}, // contest id -> latest leaderboardChanged payload
    winners: {}, // contest id -> winners (once final)
    shown: 0, rotateSeconds: 30, socket: null, attempt: 0, fatal: null, subs: {}, nextId: 1,
    rendered: null, // contest id on screen
  };

  const CONNECTION = { live: "Live", connecting: "Connecting…", offline: "Reconnecting…" };
  function setConnection(value) {
    document.body.dataset.connection = value;
    $("connection").textContent = state.fatal ? "Stopped" : CONNECTION[value];
  }
  function fail(text) {
    state.fatal = text;
    document.body.dataset.state = "error";
    $("message").hidden = false;
    $("message").textContent = text;
    $("board-view").hidden = true;
    setConnection("offline");
  }

  async function gql(query) {
    const response = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query }),
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
    const body = await response.json();
    const error = (body.errors || [])[0];
    if (error) {
      const ext = error.extensions || {};
      if (ext.code === "UNAUTHENTICATED" || FATAL.has(ext.reason)) {
        throw Object.assign(new Error(error.message), { fatal: true });
      }
      throw new Error(error.message);
    }
    return body.data;
  }

  // --- formatting
  function digits(currency) {
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency })
        .resolvedOptions().maximumFractionDigits;
    } catch (_) { return 2; }
  }
  function score(contest, value) {
    if (contest.metric === "REVENUE") {
      const d = digits(contest.currency);
      return new Intl.NumberFormat(undefined, {
        style: "currency", currency: contest.currency, maximumFractionDigits: d,
        minimumFractionDigits: 0,
      }).format(value / 10 ** d);
    }
    return new Intl.NumberFormat().format(value);
  }
  function ordinal(n) {
    const s = n % 100 >= 11 && n % 100 <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
    return `${n}${s}`;
  }
  function prizeFor(contest, rank) {
    const p = contest.prizes.find((x) => x.fromRank <= rank && rank <= x.toRank);
    if (!p) return "";
    return p.amount ? `${p.prize} · ${p.amount.formatted}` : p.prize;
  }
  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400);
    const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60]
      .map((x) => String(x).padStart(2, "0")).join(":");
    return d ? `${d}d ${hms}` : hms;
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // --- rendering
  function current() { return state.contests[state.shown % Math.max(state.contests.length, 1)]; }

  function render() {
    const contest = current();
    if (state.fatal) return;
    $("message").hidden = Boolean(contest);
    $("board-view").hidden = !contest;
    if (!contest) {
      $("message").textContent = "No published contest to show yet.";
      return;
    }
    $("title").textContent = contest.name;
    const board = state.boards[contest.id];
    const winners = state.winners[contest.id];
    $("rotation").textContent = state.contests.length > 1
      ? `${(state.shown % state.contests.length) + 1} / ${state.contests.length}` : "";
    $("period").textContent = board && contest.periods.length > 1 ? `Period ${board.period}` : "";
    if (board && board.final && winners) {
      renderWinners(contest, board, winners);
    } else {
      document.body.dataset.state = "board";
      renderBoard(contest, board);
    }
    renderPrizes(contest);
    tick();
  }

  function rowKey(row) { return row.participant.id || `anon:${row.participant.name}`; }

  function renderBoard(contest, board) {
    const list = $("board");
    const rows = board ? board.rows : [];
    $("empty").hidden = rows.length > 0;
    list.dataset.version = board ? board.version : "";
    list.dataset.contest = contest.id;
    if (state.rendered !== contest.id) { list.replaceChildren(); state.rendered = contest.id; }
    const rowHeight = list.parentElement.clientHeight / ROWS;
    const existing = new Map([...list.children].map((li) => [li.dataset.key, li]));
    // The target below the prizes: the score of the last prize-winning row on the board.
    const lastPrizeRank = Math.max(0, ...contest.prizes.map((p) => p.toRank));
    const prizeLine = rows.filter((r) => r.rank <= lastPrizeRank).pop();
    const seen = new Set();
    rows.forEach((row, index) => {
      const k = rowKey(row);
      seen.add(k);
      let li = existing.get(k);
      const fresh = !li;
      if (fresh) {
        li = el("li", "entering");
        li.dataset.key = k;
        li.append(el("span", "rank"), el("span", "name"), el("span", "prize"), el("span", "score"));
        li.querySelector(".name").after(el("span", "gap"));
        li.style.transform = `translateY(${index * rowHeight}px)`;
        list.append(li);
        requestAnimationFrame(() => li.classList.remove("entering"));
      }
      const before = Number(li.dataset.rank || 0);
      const scoreBefore = li.dataset.score;
      li.dataset.rank = row.rank;
      li.dataset.score = row.score;
      li.dataset.name = row.participant.name;
      li.querySelector(".rank").textContent = row.rank;
      li.querySelector(".name").textContent = row.participant.name;
      li.querySelector(".gap").textContent = prizeLine && row.rank > lastPrizeRank
        ? `${score(contest, prizeLine.score - row.score)} to a prize`
        : row.gapToAbove ? `${score(contest, row.gapToAbove)} to ${ordinal(row.rank - 1)}` : "";
      li.querySelector(".prize").textContent = prizeFor(contest, row.rank);
      li.querySelector(".score").textContent = score(contest, row.score);
      li.style.height = `${rowHeight * 0.9}px`;
      li.style.transform = `translateY(${index * rowHeight}px)`;
      flash(li, "moved-up", !fresh && before && row.rank < before);
      flash(li, "scored", !fresh && scoreBefore !== undefined && scoreBefore !== String(row.score));
    });
    for (const [k, li] of existing) if (!seen.has(k)) li.remove();
  }

  function flash(li, cls, on) {
    if (!on) return;
    li.classList.add(cls);
    setTimeout(() => li.classList.remove(cls), 2500);
  }

  function renderPrizes(contest) {
    const aside = $("prizes");
    aside.replaceChildren();
    if (!contest.prizes.length) { aside.hidden = true; return; }
    aside.hidden = false;
    aside.append(el("h2", "", "Prizes"));
    const dl = el("dl");
    for (const p of contest.prizes) {
      const ranks = p.fromRank === p.toRank
        ? ordinal(p.fromRank) : `${ordinal(p.fromRank)} – ${ordinal(p.toRank)}`;
      dl.append(el("dt", "", ranks), el("dd", "", p.amount ? `${p.prize} (${p.amount.formatted})` : p.prize));
    }
    aside.append(dl);
  }

  function renderWinners(contest, board, winners) {
    document.body.dataset.state = "winners";
    const podium = $("podium");
    podium.replaceChildren();
    for (const w of winners) {
      const li = el("li");
      li.dataset.rank = w.rank;
      const prize = w.prizeAmount ? `${w.prize} · ${w.prizeAmount.formatted}` : w.prize;
      li.append(el("span", "rank", ordinal(w.rank)), el("span", "name", w.participant.name),
        el("span", "prize", prize));
      podium.append(li);
    }
    if (!winners.length) podium.append(el("li", "", "No winner this time."));
    const final = $("final-board");
    final.replaceChildren(...board.rows.map((row) => {
      const li = el("li", "", `${row.rank}. ${row.participant.name} — ${score(contest, row.score)}`);
      li.dataset.rank = row.rank;
      return li;
    }));
  }

  function tick() {
    const contest = current();
    if (!contest) return;
    const board = state.boards[contest.id];
    const now = Date.now();
    const period = board && contest.periods.find((p) => p.key === board.period);
    const ends = Date.parse(period ? period.endsAt : contest.endsAt);
    const starts = Date.parse(contest.startsAt);
    let text;
    if (board && board.final) text = "Final standings";
    else if (board && board.status === "CANCELLED") text = "Cancelled";
    else if (now < starts) text = `Starts in ${duration(starts - now)}`;
    else if (now < ends) text = `${duration(ends - now)} left`;
    else text = "Closing…";
    $("clock").textContent = text;
  }

  // --- live connection
  function subscribe(contest) {
    const id = String(state.nextId++);
    state.subs[id] = contest.id;
    state.socket.send(JSON.stringify({
      id, type: "subscribe", payload: { query: LIVE, variables: { id: contest.id } },
    }));
  }

  async function loadWinners() {
    const data = await gql(WINNERS);
    for (const c of data.screen ? data.screen.contests : []) state.winners[c.id] = c.winners;
  }

  // A contest this key may no longer show (cancelled, unpublished, taken off the key).
  function drop(contestId) {
    state.contests = state.contests.filter((c) => c.id !== contestId);
    render();
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === "ping") { state.socket.send(JSON.stringify({ type: "pong" })); return; }
    if (message.type === "connection_ack") {
      state.attempt = 0;
      setConnection("live");
      for (const contest of state.contests) {
        if (!(state.boards[contest.id] && state.boards[contest.id].final)) subscribe(contest);
      }
      return;
    }
    const contestId = state.subs[message.id];
    if (message.type === "next" && contestId) {
      const update = message.payload.data && message.payload.data.leaderboardChanged;
      if (!update) {
        // No board but errors: refused or ended (cancelled, unpublished, no longer this
        // key's; `complete` follows). Drop it, as for an `error` message.
        if (message.payload.errors) drop(contestId);
        return;
      }
      state.boards[contestId] = update;
      if (update.final) {
        loadWinners().then(render, () => render());
      }
      if (current() && current().id === contestId) render();
    } else if (message.type === "error" && contestId) {
      drop(contestId); // refused before it ran
    } else if (message.type === "complete") {
      delete state.subs[message.id];
    }
  }

  function connect() {
    if (state.fatal) return;
    setConnection("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/graphql`, "graphql-transport-ws");
    state.socket = socket;
    state.subs = {};
    socket.onopen = () => socket.send(JSON.stringify({
      type: "connection_init", payload: { Authorization: `Bearer ${key}` },
    }));
    socket.onmessage = onMessage;
    socket.onclose = (event) => {
      if (state.socket !== socket) return;
      if (event.code === 4403) {
        fail(`This screen's display key no longer works (${event.reason || "refused"}). ` +
          "Ask your vendor admin for a new one.");
        return;
      }
      setConnection("offline");
      retry();
    };
  }

  function retry() {
    // 0.5 s, 1 s, 2 s … capped at 30 s, with jitter so a room of screens spreads out.
    const delay = Math.min(30000, 500 * 2 ** state.attempt) * (0.75 + Math.random() / 2);
    state.attempt += 1;
    setTimeout(start, delay);
  }

  async function start() {
    if (state.fatal) return;
    try {
      const data = await gql(SCREEN);
      if (!data.screen) throw Object.assign(new Error("no screen"), { fatal: true });
      state.contests = data.screen.contests;
      state.rotateSeconds = data.screen.rotateSeconds;
      if (Object.values(state.boards).some((b) => b.final)) await loadWinners();
      render();
      connect();
    } catch (error) {
      if (error.fatal) {
        fail("This screen's display key does not work. Ask your vendor admin for a new one.");
        return;
      }
      setConnection("offline");
      retry();
    }
  }

  if (!key) {
    fail("Open this page as /tv#key=<display key> (a vendor admin creates display keys).");
    return;
  }
  setInterval(tick, 1000);
  let shownFor = 0; // seconds the current contest has been on screen
  setInterval(() => {
    shownFor += 1;
    if (state.contests.length > 1 && !state.fatal && shownFor >= state.rotateSeconds) {
      shownFor = 0;
      state.shown += 1;
      render();
    }
  }, 1000);
  window.addEventListener("resize", render);
  start();
})();
