/** The part of plotly.js-dist-min's API the dashboard uses (the package ships no types). */
declare module 'plotly.js-dist-min' {
  export interface PlotPoint {
    curveNumber: number;
    pointNumber: number | [number, number];
    x: unknown;
    y: unknown;
    z?: unknown;
    /** The trace's customdata entry of the point (an id the figure builder put there). */
    customdata?: unknown;
  }
  export interface PlotEvent {
    points: PlotPoint[];
  }
  export interface PlotlyHTMLElement extends HTMLDivElement {
    on(event: 'plotly_hover' | 'plotly_click' | 'plotly_unhover', cb: (e: PlotEvent) => void): void;
    removeAllListeners?(event: string): void;
  }
  export interface ImageOptions {
    format: 'png' | 'svg' | 'jpeg' | 'webp';
    width?: number;
    height?: number;
    scale?: number;
  }
  const Plotly: {
    react(el: HTMLElement, data: unknown[], layout: Record<string, unknown>, config?: Record<string, unknown>): Promise<PlotlyHTMLElement>;
    purge(el: HTMLElement): void;
    /** `figure`: a chart's div, or a figure {data, layout} drawn off-screen. */
    toImage(figure: HTMLElement | { data: unknown[]; layout: Record<string, unknown> }, opts: ImageOptions): Promise<string>;
    Plots: { resize(el: HTMLElement): void };
  };
  export default Plotly;
}
