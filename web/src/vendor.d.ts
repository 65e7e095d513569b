// vendor.d.ts — what the bundle imports that ships no types of its own.
declare module "d3-flame-graph" {
  // The chart is a chain of setters (d3's convention); see its README.
  const flamegraph: () => any;
  export default flamegraph;
}
declare module "*.css";
declare module "d3-selection" {
  // Only select() is used: it hands an element to the flame graph.
  export function select(element: Element): any;
}
