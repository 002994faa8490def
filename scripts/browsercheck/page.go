package main

import (
	"encoding/json"
	"strings"
)

// pageConfig is what the page's script is told.
type pageConfig struct {
	Assets      []*asset `json:"assets"`
	Pad         string   `json:"pad"`
	CookieBytes int      `json:"cookieBytes"` // document.cookie's length with the whole jar
	SSEEvents   int      `json:"sseEvents"`
	MinGapMs    float64  `json:"minGapMs"`
}

func renderPage(c *checker) ([]byte, error) {
	cfg, err := json.Marshal(pageConfig{
		Assets: c.assets, Pad: padString(), CookieBytes: cookieHeaderLen(),
		SSEEvents: c.sseEvents, MinGapMs: float64(c.minGap.Milliseconds()),
	})
	if err != nil {
		return nil, err
	}
	return []byte(strings.Replace(pageHTML, "/*CFG*/", string(cfg), 1)), nil
}

// pageHTML runs the checks in order (assets, then the WebSocket, then the events, so that the events'
// timing is not disturbed by 8 MB of downloads), writes the verdict into #result and posts it to /verdict
// without cookies or Referer, so that it arrives even when every request with the jar is refused. A load
// that fails is fetched again to learn its status, which the failure line names ("→ 431 ...").
const pageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>SwitchFlow browser check</title></head>
<body>
<h1>SwitchFlow browser check</h1>
<pre id="result">RUNNING</pre>
<div id="assets" style="display:none"></div>
<script>
"use strict";
const CFG = /*CFG*/;
const t0 = performance.now();
const failures = [];
const V = {failures, assets: CFG.assets.length, assetsLoaded: 0, assetBytes: 0, cookieBytes: document.cookie.length,
	wsSent: 0, wsEchoed: 0, wsLargest: 0, sseEvents: 0, sseGapsMs: [], elapsedMs: 0, userAgent: navigator.userAgent};

function withTimeout(p, ms, what) {
	return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(what + ": timed out after " + ms + " ms")), ms))]);
}

// status re-fetches url with the jar and the extra header and returns "GET PATH → STATUS TEXT" or the error.
async function status(url) {
	const ac = new AbortController();
	try {
		const r = await withTimeout(fetch(url, {cache: "no-store", headers: {"X-Pad": CFG.pad}, signal: ac.signal}), 15000, "re-fetch");
		ac.abort();
		return "GET " + url.split("?")[0] + " → " + r.status + " " + r.statusText;
	} catch (e) {
		return "GET " + url.split("?")[0] + " → network error: " + e.message;
	}
}

function fnv1a(buf) {
	let h = 2166136261;
	for (let i = 0; i < buf.length; i++) {
		h ^= buf[i];
		h = Math.imul(h, 16777619) >>> 0;
	}
	return h >>> 0;
}

function loadElement(a) {
	return new Promise((resolve, reject) => {
		let el;
		if (a.kind === "img") {
			el = new Image();
			el.onload = () => el.naturalWidth === a.width ? resolve() : reject(new Error("width " + el.naturalWidth + ", want " + a.width));
			el.src = a.url;
		} else if (a.kind === "js") {
			el = document.createElement("script");
			el.onload = () => (window.__bc_js || {})[a.name] === true ? resolve() : reject(new Error("script ran without its marker"));
			el.src = a.url;
		} else {
			el = document.createElement("link");
			el.rel = "stylesheet";
			el.onload = () => {
				const rules = el.sheet && el.sheet.cssRules;
				rules && rules.length > 0 && rules[0].selectorText === ".bc-" + a.name ? resolve() : reject(new Error("stylesheet without its rule"));
			};
			el.href = a.url;
		}
		el.onerror = () => reject(new Error("did not load"));
		// In the document, images too: a detached Image whose load fails (a 431) fired neither onload
		// nor onerror in Chromium 156, and the check waited out its 30 s timeout.
		document.getElementById("assets").appendChild(el);
	});
}

async function loadAsset(a) {
	try {
		if (a.kind === "fetch") {
			const r = await withTimeout(fetch(a.url, {cache: "no-store", headers: {"X-Pad": CFG.pad}}), 30000, "fetch");
			if (!r.ok) throw new Error("(GET " + a.url + " → " + r.status + " " + r.statusText + ")");
			const b = new Uint8Array(await r.arrayBuffer());
			if (b.length !== a.size) throw new Error(b.length + " bytes, want " + a.size);
			if (fnv1a(b) !== a.hash) throw new Error("body differs (hash)");
		} else {
			await withTimeout(loadElement(a), 30000, "load");
		}
		V.assetsLoaded++;
		V.assetBytes += a.size;
	} catch (e) {
		let msg = a.kind + " " + a.url + ": " + e.message;
		if (a.kind !== "fetch") msg += " (" + await status(a.url) + ")";
		failures.push(msg);
	}
}

function wsMessages() {
	const sizes = [1, 10, 125, 126, 1000, 65535, 65536, 70000, 200000];
	const msgs = sizes.map((n, i) => {
		let s = "";
		const unit = "ws-" + i + "-abcdefghijklmnopqrstuvwxyz0123456789|";
		while (s.length < n) s += unit;
		return s.slice(0, n);
	});
	const bin = new Uint8Array(3000);
	for (let i = 0; i < bin.length; i++) bin[i] = (i * 7 + 3) & 255;
	msgs.push(bin);
	return msgs;
}

async function checkWebSocket() {
	const url = "ws://" + location.host + "/ws?pad=" + CFG.pad;
	const msgs = wsMessages();
	V.wsSent = msgs.length;
	try {
		await withTimeout(new Promise((resolve, reject) => {
			const ws = new WebSocket(url);
			ws.binaryType = "arraybuffer";
			let got = 0;
			ws.onopen = () => msgs.forEach(m => ws.send(m));
			ws.onmessage = ev => {
				const want = msgs[got];
				let ok;
				if (typeof want === "string") {
					ok = ev.data === want;
				} else {
					const b = new Uint8Array(ev.data);
					ok = b.length === want.length && b.every((x, i) => x === want[i]);
				}
				if (!ok) {
					reject(new Error("echo " + got + " differs from what was sent"));
					ws.close();
					return;
				}
				V.wsLargest = Math.max(V.wsLargest, want.length);
				V.wsEchoed = ++got;
				if (got === msgs.length) ws.close(1000, "done");
			};
			ws.onclose = ev => got === msgs.length ? resolve() : reject(new Error("closed after " + got + " echoes (code " + ev.code + ")"));
			ws.onerror = () => reject(new Error("error after " + got + " echoes"));
		}), 20000, "websocket");
	} catch (e) {
		failures.push("websocket /ws: " + e.message + (V.wsEchoed === 0 ? " (" + await status("/ws?pad=" + CFG.pad) + ")" : ""));
	}
}

async function checkSSE() {
	const url = "/sse?pad=" + CFG.pad;
	const times = [];
	try {
		await withTimeout(new Promise((resolve, reject) => {
			const es = new EventSource(url);
			es.onmessage = ev => {
				times.push(performance.now());
				const n = parseInt(ev.data, 10);
				if (n !== times.length - 1) {
					es.close();
					reject(new Error("event " + (times.length - 1) + " carried " + JSON.stringify(ev.data)));
					return;
				}
				if (times.length === CFG.sseEvents) {
					es.close();
					resolve();
				}
			};
			es.onerror = () => {
				es.close();
				reject(new Error("stream failed after " + times.length + " events"));
			};
		}), 20000, "events");
	} catch (e) {
		failures.push("sse /sse: " + e.message + (times.length === 0 ? " (" + await status(url) + ")" : ""));
	}
	V.sseEvents = times.length;
	for (let i = 1; i < times.length; i++) V.sseGapsMs.push(Math.round(times[i] - times[i - 1]));
	const bunched = V.sseGapsMs.filter(g => g < CFG.minGapMs);
	if (bunched.length > 0) {
		failures.push("sse /sse: events arrived together, not one by one: gaps " + V.sseGapsMs.join(", ") + " ms (each must be >= " + CFG.minGapMs + " ms)");
	}
}

async function main() {
	if (V.cookieBytes < CFG.cookieBytes) {
		failures.push("browser: holds " + V.cookieBytes + " bytes of cookies, want " + CFG.cookieBytes + " (did it refuse a Set-Cookie?)");
	}
	await Promise.all(CFG.assets.map(loadAsset));
	await checkWebSocket();
	await checkSSE();
}

async function post(text) {
	for (let i = 0; i < 5; i++) {
		try {
			const r = await fetch("/verdict", {method: "POST", credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store",
				headers: {"Content-Type": "application/json"}, body: text});
			if (r.ok) return;
		} catch (e) {}
		await new Promise(r => setTimeout(r, 500));
	}
}

main().catch(e => failures.push("page script: " + e.message)).then(async () => {
	V.elapsedMs = Math.round(performance.now() - t0);
	const text = JSON.stringify(V);
	document.getElementById("result").textContent = (failures.length === 0 ? "PASS " : "FAIL ") + text;
	await post(text);
});
</script>
</body></html>
`
