// No inline scripts (the CSP forbids them). After htmx swaps a fragment in, put the keyboard
// where the operator's next step is: the confirm button of a preview, or the ID field again.
// afterSettle, not afterSwap: only then has htmx taken the new forms, so an Enter on the focused
// button goes through htmx and never submits a plain form.
document.addEventListener("htmx:afterSettle", function (event) {
  var target = event.detail.target;
  var next = target.querySelector("#confirm") || target.querySelector(".actions button");
  if (next) { next.focus(); }
});

// How late each step reached the screen: its journal time (data-at, ms since the epoch) against
// the moment it was added to the page. The benchmark reads these; they cost nothing else.
window.cardstationLags = [];
new MutationObserver(function (mutations) {
  var now = Date.now();
  mutations.forEach(function (m) {
    m.addedNodes.forEach(function (node) {
      if (node.nodeType === 1 && node.matches("li.step[data-at]")) {
        window.cardstationLags.push({state: node.dataset.state, lag: now - Number(node.dataset.at)});
      }
    });
  });
}).observe(document.documentElement, {childList: true, subtree: true});

// A swapped-in fragment may name where the keyboard goes next (data-autofocus): the ID field
// filled by 读身份证, the confirm button of 补打卡面.
document.addEventListener("htmx:afterSettle", function () {
  var next = document.querySelector("[data-autofocus]");
  if (next) { next.removeAttribute("data-autofocus"); next.focus(); }
});

// 窗口业务: the last operation's result goes away when the next one starts (its waiting state
// shows instead), so a result on the screen is always the latest operation's.
// The operation's button is disabled while it runs, which takes the keyboard away: give it back
// to the same button afterwards, so the next Enter repeats it or Tab moves on.
var windowFocus = null;
document.addEventListener("htmx:beforeRequest", function (event) {
  var target = event.detail.target;
  if (target && target.id === "window-result") {
    target.innerHTML = "";
    windowFocus = document.activeElement;
  }
});
document.addEventListener("htmx:afterRequest", function (event) {
  var target = event.detail.target;
  if (target && target.id === "window-result" && windowFocus) {
    var back = windowFocus;
    windowFocus = null;
    setTimeout(function () { if (back.isConnected) { back.focus(); } }, 0);
  }
});

// F2 reads the ID card on the GA 467 reader (制卡 page), wherever the keyboard is.
document.addEventListener("keydown", function (event) {
  if (event.key === "F2") {
    var button = document.getElementById("read-id");
    if (button && !button.disabled) { event.preventDefault(); button.click(); }
  }
});

// htmx has processed the page: its forms now submit through htmx (tests wait for this; a
// scanner typing faster than the page loads would otherwise submit the plain form).
document.addEventListener("htmx:load", function (event) {
  if (event.detail.elt === document.body) { document.body.dataset.ready = "1"; }
});

// 采集: the browser's camera (getUserMedia) or a loaded file; the picture goes to the server,
// which finds the face, crops, checks the background and answers the photo to confirm (or why
// it cannot be one). The CSRF token is the one htmx sends (the body's hx-headers).
function csrfToken() {
  try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || ""; }
  catch (e) { return ""; }
}
// The API takes a request of at most 1 MiB: a larger file is refused here, in the operator's
// words (the result's data-too-large), before it is sent.
var PICTURE_MAX_BYTES = 1000000;
function sendPicture(blob) {
  var result = document.getElementById("photo-result");
  if (blob.size > PICTURE_MAX_BYTES) {
    var note = document.createElement("p");
    note.className = "fault";
    note.dataset.code = "PICTURE_TOO_LARGE";
    note.textContent = result.dataset.tooLarge || "";
    result.replaceChildren(note);
    return;
  }
  var form = new FormData();
  form.append("picture", blob, "picture");
  if (document.getElementById("whiten").checked) { form.append("whiten", "1"); }
  result.innerHTML = "";
  result.dataset.state = "waiting";
  fetch("/intake/photo", {method: "POST", body: form, credentials: "same-origin",
                          headers: {"X-CSRF-Token": csrfToken()}})
    .then(function (response) { return response.text(); })
    .then(function (html) { result.innerHTML = html; result.dataset.state = "done"; htmx.process(result); });
}
document.addEventListener("DOMContentLoaded", function () {
  var video = document.getElementById("camera");
  if (!video) { return; }
  var state = document.getElementById("camera-state");
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false})
      .then(function (stream) { video.srcObject = stream; video.dataset.live = "1"; })
      .catch(function () { state.textContent = state.dataset.none || ""; });
  }
  document.getElementById("snap").addEventListener("click", function () {
    if (!video.videoWidth) { return; }
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(sendPicture, "image/jpeg", 0.92);
  });
  document.getElementById("picture-file").addEventListener("change", function (event) {
    if (event.target.files.length) {
      // the browser's own picker text follows its locale; the file's name is shown here
      document.getElementById("picture-file-name").textContent = event.target.files[0].name;
      sendPicture(event.target.files[0]);
    }
  });
});
