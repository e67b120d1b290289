// melfuse playground: a client of the public API, nothing more. It reads the model's description
// from /genres and the request limits (and whether a `sampler` exists) from /openapi.json, sends
// GET /generate for the WAV, then the PNG of the same request with the seed the service reported
// in X-Melfuse-Seed, and keeps the clips of this tab as blob: URLs. No inline script (the page's
// Content-Security-Policy forbids it), no third-party request, no state on the server.
"use strict";

(() => {
  const HISTORY_LENGTH = 8;
  const SLIDER_MAX = 100;
  const MORPH_SEPARATOR = " -> ";
  // API fields that have a control on this page; errors naming another field go under the button.
  const FIELDS = ["blend", "morph", "seed", "temperature", "seconds", "griffin_lim_iters", "sampler"];

  const $ = (id) => document.getElementById(id);
  const state = {
    genres: [],
    sampler: false,
    busy: false,
    history: [],
    current: null,
  };

  // ---- small helpers ---------------------------------------------------------------------------

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // A weight as the API reads it: up to four decimals, no trailing zeros.
  function number(value) {
    return String(Number(value.toFixed(4)));
  }

  // A bound from the OpenAPI document, where f32 limits arrive as 0.10000000149011612.
  function tidy(value) {
    return String(Number(Number(value).toPrecision(6)));
  }

  function percent(share) {
    return `${Math.round(share * 100)} %`;
  }

  // ---- the blend -------------------------------------------------------------------------------

  function weights() {
    return state.genres.map((genre) => Number($(`weight-${genre.index}`).value));
  }

  // The normalised blend as `genre:share` pairs (zero weights left out), "" when all are zero.
  function blendText() {
    const values = weights();
    const total = values.reduce((a, b) => a + b, 0);
    if (total <= 0) return "";
    return state.genres
      .filter((genre) => values[genre.index] > 0)
      .map((genre) => `${genre.name}:${number(values[genre.index] / total)}`)
      .join(",");
  }

  function updateBlend() {
    const values = weights();
    const total = values.reduce((a, b) => a + b, 0);
    const bar = $("mixbar");
    for (const genre of state.genres) {
      const share = total > 0 ? values[genre.index] / total : 0;
      const label = percent(share);
      const slider = $(`weight-${genre.index}`);
      $(`share-${genre.index}`).textContent = label;
      slider.setAttribute("aria-valuetext", `weight ${values[genre.index]}, ${label} of the blend`);
      slider.style.setProperty("--fill", `${(100 * values[genre.index]) / SLIDER_MAX}%`);
      bar.children[genre.index].style.flexGrow = String(share);
    }
    $("blend-text").textContent = blendText() || "(all weights are 0)";
  }

  function buildSliders() {
    const box = $("genre-sliders");
    const bar = $("mixbar");
    box.replaceChildren();
    bar.replaceChildren();
    for (const genre of state.genres) {
      const id = `weight-${genre.index}`;
      const colour = `g${genre.index % 8}`;
      const slider = element("input", {
        type: "range",
        id,
        name: id,
        min: "0",
        max: String(SLIDER_MAX),
        step: "1",
        value: genre.index === 0 ? String(SLIDER_MAX) : "0",
        "data-genre": genre.name,
        "aria-describedby": "blend-hint",
      });
      slider.addEventListener("input", updateBlend);
      box.append(
        element(
          "div",
          { class: `slider ${colour}` },
          element("label", { for: id, text: genre.name }),
          slider,
          element("output", { id: `share-${genre.index}`, for: id, class: "share" }),
        ),
      );
      bar.append(element("span", { class: colour }));
    }
    updateBlend();
  }

  // ---- the morph editor ------------------------------------------------------------------------

  function stopInputs() {
    return [...$("morph-stops").querySelectorAll("input")];
  }

  function morphText() {
    return stopInputs()
      .map((input) => input.value.trim())
      .filter((text) => text !== "")
      .join(MORPH_SEPARATOR);
  }

  function renumberStops() {
    const inputs = stopInputs();
    inputs.forEach((input, i) => {
      const item = input.closest("li");
      item.querySelector("label").textContent = `Stop ${i + 1}`;
      item.querySelector(".up").disabled = i === 0;
      item.querySelector(".down").disabled = i === inputs.length - 1;
      item.querySelector(".up").setAttribute("aria-label", `Move stop ${i + 1} earlier`);
      item.querySelector(".down").setAttribute("aria-label", `Move stop ${i + 1} later`);
      item.querySelector(".remove").setAttribute("aria-label", `Remove stop ${i + 1}`);
    });
    $("morph-text").textContent = morphText() || "(no stops)";
  }

  let stopCounter = 0;
  function addStop(text) {
    stopCounter += 1;
    const id = `stop-${stopCounter}`;
    const input = element("input", { type: "text", id, value: text, spellcheck: "false", autocomplete: "off" });
    input.addEventListener("input", renumberStops);
    const up = element("button", { type: "button", class: "up icon", text: "↑" });
    const down = element("button", { type: "button", class: "down icon", text: "↓" });
    const remove = element("button", { type: "button", class: "remove icon", text: "✕" });
    const item = element("li", {}, element("label", { for: id }), input, up, down, remove);
    up.addEventListener("click", () => {
      if (item.previousElementSibling) item.parentNode.insertBefore(item, item.previousElementSibling);
      renumberStops();
      up.disabled ? down.focus() : up.focus();
    });
    down.addEventListener("click", () => {
      if (item.nextElementSibling) item.parentNode.insertBefore(item.nextElementSibling, item);
      renumberStops();
      down.disabled ? up.focus() : down.focus();
    });
    remove.addEventListener("click", () => {
      const next = item.nextElementSibling || item.previousElementSibling;
      item.remove();
      renumberStops();
      (next ? next.querySelector("input") : $("add-stop")).focus();
    });
    $("morph-stops").append(item);
    renumberStops();
    return input;
  }

  // ---- the model and the API's limits ----------------------------------------------------------

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.json();
  }

  function describeModel(info) {
    $("info-model").textContent = info.model;
    $("info-genres").textContent = info.genres.map((g) => g.name).join(", ");
    const provider = info.execution_provider ? info.execution_provider.toUpperCase() : "unknown";
    $("info-provider").textContent = provider;
    const segment = info.segment_seconds ? `${Number(info.segment_seconds.toFixed(2))} s` : "unknown";
    $("info-segment").textContent = info.sample_rate ? `${segment} at ${info.sample_rate} Hz` : segment;
  }

  // Bounds and defaults of /generate's query parameters; the sampler control only if one exists.
  function applyLimits(openapi) {
    const parameters = openapi?.paths?.["/generate"]?.get?.parameters || [];
    const byName = Object.fromEntries(parameters.map((p) => [p.name, p.schema || {}]));
    for (const name of ["temperature", "seconds", "griffin_lim_iters"]) {
      const schema = byName[name];
      const input = $(name);
      if (!schema) continue;
      if (schema.minimum !== undefined) input.min = tidy(schema.minimum);
      if (schema.maximum !== undefined) input.max = tidy(schema.maximum);
      if (schema.default !== undefined) input.value = tidy(schema.default);
      const range = `${input.min}–${input.max}`;
      const hint = $(`${name}-hint`);
      hint.textContent = `${hint.dataset.text || (hint.dataset.text = hint.textContent)} Range ${range}.`;
    }
    const sampler = byName.sampler;
    if (sampler) {
      const select = $("sampler");
      // DESIGN.md names two samplers; a schema without an enum gets those, and without a default
      // an empty first choice leaves the decision to the service.
      const choices = sampler.enum || ["bank", "prior"];
      const options = choices.map((choice) => element("option", { value: choice, text: choice }));
      if (sampler.default === undefined) options.unshift(element("option", { value: "", text: "service default" }));
      select.replaceChildren(...options);
      if (sampler.default !== undefined) select.value = String(sampler.default);
      const hint = parameters.find((p) => p.name === "sampler")?.description || sampler.description;
      if (hint) $("sampler-hint").textContent = hint;
      state.sampler = choices.length > 0;
      $("field-sampler").hidden = !state.sampler;
    }
  }

  // ---- errors ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const detail = body?.error || {};
      super(detail.message || `the service answered ${status}`);
      this.status = status;
      this.code = detail.code || String(status);
      this.field = detail.field || null;
      this.retryAfter = retryAfter;
    }
  }

  function clearErrors() {
    for (const node of document.querySelectorAll(".error")) {
      node.hidden = true;
      node.textContent = "";
    }
    for (const node of document.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  // The control an API field names: morph stops stand for `morph`, sliders for `blend`.
  function controlFor(field) {
    if (field === "blend") return $("weight-0");
    if (field === "morph") return stopInputs()[0] || $("add-stop");
    return $(field);
  }

  function showError(error) {
    let field = error.field;
    if (field === "blend" && $("morph-enabled").checked) field = "morph";
    const where = FIELDS.includes(field) && $(`error-${field}`) ? field : "general";
    let message = error.message;
    if (error.status === 503 || error.status === 504) {
      const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s (Retry-After).` : " Try again shortly.";
      const what = error.status === 503 ? "The service is busy" : "The request took too long";
      message = `${what}: ${message.replace(/\.$/, "")}.${wait}`;
    } else if (!(error instanceof ApiError)) {
      message = `Could not reach the service: ${message}`;
    }
    const box = $(`error-${where}`);
    box.textContent = where === "general" && field ? `${field}: ${message}` : message;
    box.hidden = false;
    const control = where === "general" ? null : controlFor(field);
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.focus();
    }
  }

  // ---- generating ------------------------------------------------------------------------------

  function requestParameters() {
    const params = new URLSearchParams();
    if ($("morph-enabled").checked) params.set("morph", morphText());
    else params.set("blend", blendText());
    const seed = $("seed").value.trim();
    if (seed !== "") params.set("seed", seed);
    for (const name of ["temperature", "seconds", "griffin_lim_iters"]) params.set(name, $(name).value.trim());
    if (state.sampler && $("sampler").value !== "") params.set("sampler", $("sampler").value);
    return params;
  }

  async function fetchClip(params, format) {
    const query = new URLSearchParams(params);
    query.set("format", format);
    const response = await fetch(`/generate?${query}`);
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      throw new ApiError(response.status, body, response.headers.get("Retry-After"));
    }
    return { blob: await response.blob(), seed: response.headers.get("X-Melfuse-Seed"), query: query.toString() };
  }

  function setBusy(busy, text) {
    state.busy = busy;
    const button = $("generate");
    button.setAttribute("aria-disabled", String(busy));
    button.classList.toggle("busy", busy);
    button.textContent = busy ? "Generating…" : "Generate";
    $("result").setAttribute("aria-busy", String(busy));
    document.body.dataset.busy = String(busy);
    $("status").textContent = text;
  }

  function describe(params) {
    const what = params.has("morph") ? `morph ${params.get("morph")}` : params.get("blend");
    return `${what} · seed ${params.get("seed")} · temperature ${params.get("temperature")} · ${params.get("seconds")} s`;
  }

  async function generate(event) {
    event.preventDefault();
    if (state.busy) return;
    clearErrors();
    const params = requestParameters();
    setBusy(true, `Generating a ${params.get("seconds")} s clip…`);
    const started = performance.now();
    try {
      const wav = await fetchClip(params, "wav");
      // The spectrogram of the same clip: same request, with the seed the service used.
      params.set("seed", wav.seed);
      const png = await fetchClip(params, "png");
      const clip = {
        params,
        seed: wav.seed,
        query: wav.query,
        wavUrl: URL.createObjectURL(wav.blob),
        pngUrl: URL.createObjectURL(png.blob),
        label: describe(params),
      };
      remember(clip);
      show(clip, true);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      setBusy(false, `Done in ${seconds} s (seed ${wav.seed}).`);
    } catch (error) {
      setBusy(false, "");
      showError(error);
    }
  }

  function show(clip, play) {
    state.current = clip;
    renderHistory();
    $("result-empty").hidden = true;
    $("result-body").hidden = false;
    const result = $("result");
    result.dataset.seed = clip.seed;
    result.dataset.query = clip.query;
    result.dataset.blend = clip.params.get("blend") || "";
    result.dataset.morph = clip.params.get("morph") || "";
    $("result-summary").textContent = clip.label;
    // The request that gives this clip again (with the seed the service used), as a person would
    // type it; the page sends it percent-encoded.
    const again = new URLSearchParams(clip.params);
    again.set("format", "wav");
    const readable = [...again].map(([name, value]) => `${name}=${value}`).join("&");
    $("request-text").textContent = `GET /generate?${readable}`;
    const player = $("player");
    player.src = clip.wavUrl;
    player.load();
    if (play) player.play().catch(() => {}); // the browser may refuse autoplay; the controls remain
    let image = $("spectrogram");
    if (!image) {
      image = element("img", { id: "spectrogram", alt: "" });
      $("spectrogram-figure").prepend(image);
    }
    image.src = clip.pngUrl;
    image.alt = `Mel spectrogram of ${clip.label}`;
    const name = `melfuse-${clip.seed}`;
    for (const [format, url] of [["wav", clip.wavUrl], ["png", clip.pngUrl]]) {
      const link = $(`download-${format}`);
      link.href = url;
      link.download = `${name}.${format}`;
    }
  }

  // ---- history ---------------------------------------------------------------------------------

  function remember(clip) {
    state.history.unshift(clip);
    for (const old of state.history.splice(HISTORY_LENGTH)) {
      URL.revokeObjectURL(old.wavUrl);
      URL.revokeObjectURL(old.pngUrl);
    }
    renderHistory();
  }

  function renderHistory() {
    const list = $("history");
    list.replaceChildren(
      ...state.history.map((clip, i) => {
        const play = element("button", { type: "button", text: "Play", "aria-label": `Play clip ${i + 1}: ${clip.label}` });
        play.addEventListener("click", () => {
          show(clip, true); // re-renders the list: keep the keyboard focus on this clip's button
          $("history").children[i]?.querySelector("button")?.focus();
        });
        const download = element("a", {
          href: clip.wavUrl,
          download: `melfuse-${clip.seed}.wav`,
          class: "button",
          text: "Download",
          "aria-label": `Download clip ${i + 1} as WAV`,
        });
        const blend = clip.params.get("morph") || clip.params.get("blend");
        const details = `seed ${clip.seed} · T ${clip.params.get("temperature")} · ${clip.params.get("seconds")} s`;
        return element(
          "li",
          { "data-seed": clip.seed, class: clip === state.current ? "current" : "" },
          element(
            "span",
            { class: "info" },
            element("span", { class: "what", text: blend }),
            element("span", { class: "seed", text: details }),
          ),
          element("span", { class: "row" }, play, download),
        );
      }),
    );
    $("history-empty").hidden = state.history.length > 0;
  }

  // ---- start -----------------------------------------------------------------------------------

  function newSeed() {
    const [value] = crypto.getRandomValues(new Uint32Array(1));
    $("seed").value = String(value);
  }

  async function start() {
    $("generate-form").addEventListener("submit", generate);
    $("new-seed").addEventListener("click", newSeed);
    $("add-stop").addEventListener("click", () => addStop(blendText()).focus());
    $("morph-enabled").addEventListener("change", () => {
      document.body.dataset.morph = String($("morph-enabled").checked);
    });
    try {
      const info = await getJson("/genres");
      state.genres = info.genres.map((genre, index) => ({ name: genre.name, index }));
      describeModel(info);
      buildSliders();
      for (const genre of state.genres.slice(0, 2)) addStop(`${genre.name}:1`);
    } catch (error) {
      $("info-model").textContent = "unavailable";
      showError(error);
    }
    try {
      applyLimits(await getJson("/openapi.json"));
    } catch (error) {
      // The controls keep their built-in bounds; the service still checks every value.
      $("status").textContent = `Request limits unknown (${error.message}).`;
    }
    document.body.dataset.ready = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
