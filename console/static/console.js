// No inline scripts (the CSP forbids them). After htmx swaps a fragment in, put the keyboard
// where the operator's next step is: the confirm button of a preview, or the ID field again.
document.addEventListener("htmx:afterSwap", function (event) {
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
