// Charts through Apache ECharts (app/console/vendor/, pinned and checksummed by the
// contract gate). Each chart draws the numbers of one server answer as they are: the
// library stacks series visually, nothing here adds, filters or reorders data.

export const SEVERITY_COLORS = { block: "#b42318", warn: "#c4620a", info: "#2e6fbf" };
export const STATUS_COLORS = { fail: "#b42318", warn: "#c4620a", pass: "#067647" };
const PALETTE = ["#0b5cad", "#7a3db8", "#067647", "#c4620a", "#b42318", "#3d6b7a", "#8a6d00", "#5b6470"];
const live = new Set();

function lib() {
  if (!window.echarts) throw new Error("the chart library did not load");
  return window.echarts;
}

// A chart in `container` (a div with role=img and an aria-label the caller sets).
export function chart(container, option, onClick) {
  const instance = lib().init(container, null, { renderer: "canvas" });
  instance.setOption({
    animation: false,
    textStyle: { fontFamily: "system-ui, sans-serif", color: "#1b1f24" },
    color: PALETTE,
    ...option,
  });
  if (onClick) instance.on("click", onClick);
  live.add(instance);
  return instance;
}

// Charts of the previous page are disposed before a new page draws.
export function disposeAll() {
  for (const instance of live) instance.dispose();
  live.clear();
}

let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => { for (const instance of live) instance.resize(); }, 100);
});
