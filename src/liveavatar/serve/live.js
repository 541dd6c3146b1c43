// The Live tab: the microphone goes to the avatar over WebRTC and the avatar comes back as video +
// audio on one clock (POST /v1/sessions, then POST /v1/sessions/{id}/webrtc with the SDP offer).
// Inlined into the page by ui.py; uses the page's $() and api().
"use strict";
const liveFiles = { image: null };
window.liveEvents = [];  // every data-channel event with its arrival time (tests read it)
let liveRun = null;  // {session, pc, mic, channel, location, timers, audio}

function showTab(name) {
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("on", b.dataset.tab === name);
  $("videotab").hidden = name !== "videotab";
  $("livetab").hidden = name !== "livetab";
}

function setLiveImage(file) {
  liveFiles.image = file;
  $("liveimgprev").hidden = !file;
  if (file) $("liveimgprev").src = URL.createObjectURL(file);
  $("livestart").disabled = !file || !!liveRun;
}

async function liveSample() {
  try {
    const [img, txt] = await Promise.all([api("/v1/samples/portrait.png"), api("/v1/samples/prompt.txt")]);
    if (!img.ok) throw new Error("the sample portrait is not available on this server");
    if (txt.ok) $("liveprompt").value = (await txt.text()).trim();
    setLiveImage(new File([await img.blob()], "portrait.png", { type: "image/png" }));
  } catch (e) { $("livestatus").textContent = e.message; }
}

function meter(stream) {  // the microphone's level, so a person sees the page hears them
  const ctx = new AudioContext(), analyser = ctx.createAnalyser();
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const draw = () => {
    if (!liveRun || liveRun.audio !== ctx) { ctx.close(); return; }
    analyser.getFloatTimeDomainData(data);
    const rms = Math.sqrt(data.reduce((s, x) => s + x * x, 0) / data.length);
    const level = Math.max(0, Math.min(1, (20 * Math.log10(rms + 1e-9) + 60) / 60));
    $("miclevel").firstElementChild.style.width = (100 * level).toFixed(0) + "%";
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  return ctx;
}

function onLiveEvent(text) {
  let e;
  try { e = JSON.parse(text); } catch { return; }
  window.liveEvents.push(Object.assign({ at: performance.now() }, e));
  if (e.type === "pong") { liveRun.rtt = performance.now() - e.t; return; }
  if (e.type === "speech.started" && e.server_latency_ms != null) showLatency(e.server_latency_ms);
  const li = document.createElement("li");
  li.textContent = `${e.type}` + (e.position_s != null ? ` after ${e.position_s.toFixed(2)} s` : "") +
    (e.interrupted ? " (interrupted)" : "") + (e.message ? `: ${e.message}` : "");
  $("liveevents").prepend(li);
  while ($("liveevents").children.length > 6) $("liveevents").lastElementChild.remove();
}

async function showLatency(serverMs) {
  // mouth-to-ear ~ the uplink and downlink (one round trip, from the data channel's ping/pong) +
  // what the server took from the first sample of speech to the frame showing it + the video's
  // jitter buffer (from getStats)
  let jitter = 0;
  const stats = await liveRun.pc.getStats();
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video" && s.jitterBufferEmittedCount) jitter = 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount; });
  const rtt = liveRun.rtt || 0, total = Math.round(serverMs + rtt + jitter);
  $("latency").textContent = `mouth-to-ear about ${total} ms: server ${serverMs} ms + network ${Math.round(rtt)} ms + jitter buffer ${Math.round(jitter)} ms`;
}

async function liveStart() {
  $("livestart").disabled = true;
  $("livestatus").textContent = "starting...";
  try {
    const fd = new FormData();
    fd.append("image", liveFiles.image, liveFiles.image.name);
    fd.append("prompt", $("liveprompt").value);
    const res = await api("/v1/sessions", { method: "POST", body: fd });
    const session = await res.json();
    if (!res.ok) throw new Error(session.error ? session.error.message : `the server answered ${res.status}`);
    const config = await (await api("/v1/webrtc")).json();
    const mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    const pc = new RTCPeerConnection({ iceServers: config.ice_servers || [] });
    liveRun = { session, pc, mic, rtt: 0, timers: [] };
    liveRun.audio = meter(mic);
    pc.addTrack(mic.getAudioTracks()[0], mic);
    pc.addTransceiver("video", { direction: "recvonly" });
    const shown = new MediaStream();
    pc.ontrack = (ev) => { shown.addTrack(ev.track); $("livevideo").srcObject = shown; $("livevideo").play().catch(() => {}); };
    const channel = liveRun.channel = pc.createDataChannel("events");
    channel.onmessage = (m) => onLiveEvent(m.data);
    channel.onopen = () => liveRun.timers.push(setInterval(() => channel.send(JSON.stringify({ type: "ping", t: performance.now() })), 1000));
    pc.onconnectionstatechange = () => { if (["failed", "closed"].includes(pc.connectionState)) liveStop(`connection ${pc.connectionState}`); };
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await api(`/v1/sessions/${session.id}/webrtc`, { method: "POST", body: pc.localDescription.sdp, headers: { "Content-Type": "application/sdp" } });
    if (answer.status !== 201) throw new Error((await answer.json()).error.message);
    liveRun.location = answer.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
    $("livestatus").textContent = `live: ${session.width || ""}${session.width ? "x" + session.height + ", " : ""}speak and the avatar says it back`;
    $("livestop").disabled = false;
    $("say").disabled = !config.tts;
  } catch (e) { liveStop(e.message); }
}

async function liveStop(why) {
  const run = liveRun;
  liveRun = null;
  if (run) {
    run.timers.forEach(clearInterval);
    run.mic && run.mic.getTracks().forEach((t) => t.stop());
    // keepalive: these still go out when the tab is closing (pagehide)
    if (run.location) api(run.location, { method: "DELETE", keepalive: true }).catch(() => {});
    run.pc && run.pc.close();
    if (run.session && run.session.id) api(`/v1/sessions/${run.session.id}`, { method: "DELETE", keepalive: true }).catch(() => {});
  }
  $("livestatus").textContent = typeof why === "string" ? why : "stopped";
  $("livestop").disabled = true;
  $("say").disabled = true;
  $("livestart").disabled = !liveFiles.image;
}

async function say() {
  const text = $("saytext").value.trim();
  if (!text || !liveRun) return;
  const res = await api(`/v1/sessions/${liveRun.session.id}/say`, { method: "POST", body: JSON.stringify({ text }), headers: { "Content-Type": "application/json" } });
  if (!res.ok) $("sayhint").textContent = (await res.json()).error.message;
  else $("saytext").value = "";
}

async function liveInit() {
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("liveimage").addEventListener("change", (e) => setLiveImage(e.target.files[0] || null));
  $("livesample").addEventListener("click", liveSample);
  $("livestart").addEventListener("click", liveStart);
  $("livestop").addEventListener("click", () => liveStop());
  $("say").addEventListener("click", () => say().catch((e) => { $("sayhint").textContent = e.message; }));
  try {
    const res = await api("/v1/webrtc");
    const config = res.ok ? await res.json() : null;
    if (!config) $("livestatus").textContent = res.status === 501 ? (await res.json()).error.message : `this server has no live sessions (${res.status})`;
    else if (!config.tts) $("sayhint").textContent = config.tts_hint;
  } catch (e) { /* the token box is showing */ }
  window.addEventListener("pagehide", () => { if (liveRun) liveStop(); });
  if (location.hash === "#live") showTab("livetab");
}
liveInit();
