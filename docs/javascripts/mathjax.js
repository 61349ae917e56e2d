// MathJax settings for pymdownx.arithmatex (generic mode): $...$ inline, $$...$$ display.
// The renderer itself is served by the site (javascripts/mathjax/, copied by docs/hooks.py).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

// Material swaps pages without a reload under instant navigation: typeset each new page once
// MathJax has finished its own start-up typesetting (which covers the first page). Chaining on
// startup.promise is MathJax 3's way to queue typesetting; clearing the output's font cache here
// would drop the CSS of every character already shown, leaving the formulas blank.
document$.subscribe(() => {
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) {
    return;  // not loaded yet: its start-up typesets the page
  }
  MathJax.startup.promise = MathJax.startup.promise.then(() => {
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise();
  });
});
