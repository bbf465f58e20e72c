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
