// No inline scripts (the CSP forbids them). After htmx swaps a fragment in, put the keyboard
// where the operator's next step is: the confirm button of a preview, or the ID field again.
document.addEventListener("htmx:afterSwap", function (event) {
  var target = event.detail.target;
  var next = target.querySelector("#confirm") || target.querySelector(".actions button");
  if (next) { next.focus(); }
});
