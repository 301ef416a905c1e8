/** Figure builders: API results → Plotly figure specs {data, layout} plus their tables (no DOM; shared by the dashboard and the CLI). */
export type { Cell, FigureSpec, Layout, Table, Trace } from './types.ts';
export { tableToCsv, tableToJson } from './csv.ts';
export { DIVERGING, SEQUENTIAL, MASKED_COLOUR, tokenLabel, positionLabels, headLabel, num, finiteOrNull } from './common.ts';
export { logitLensFigure, lensRowLabel } from './logitLens.ts';
export type { LogitLensData, LensMetric, LogitLensOptions } from './logitLens.ts';
export {
  attentionHeadFigure, attentionGridFigure, attentionLinesFigure, attentionFocus, focusLineShapes, focusShapes, gridHeadAt, gridHeadOutline, headPattern, poolPattern,
} from './attention.ts';
export type { AttentionData, GridFigureOptions, HeadFigureOptions } from './attention.ts';
export { headGridFigure, headOutlines, rankHeads } from './heads.ts';
export type { HeadGrid, HeadGridOptions } from './heads.ts';
export { ablationSweepFigure, ablationResultFigure } from './ablation.ts';
export type { AblateSweepData, AblateData } from './ablation.ts';
export { headScoreFigure, inductionCeiling, lossByPositionFigure, repeatedShape, scoresOf } from './induction.ts';
export type { HeadsDetectData, DetectKindName } from './induction.ts';
export { ioiLogitDiffFigure, ioiAttributionFigure, patchingFigure } from './ioi.ts';
export type { IoiData, PatchData } from './ioi.ts';
export { compositionFigure, copyingFigure, COPYING_REFERENCE, positionalFigure, topCopiedFigure } from './circuits.ts';
export type { CompositionFigureOptions, CompositionData, CopyingData, PositionalData, TopCopiedData } from './circuits.ts';
export { attentionTextFigure, lensTextFigure, lossTextFigure, saliencyTextFigure, textScaleAt } from './text.ts';
export type { ForwardData, SaliencyTextData, TextFigure, TextScale } from './text.ts';
export { meanSeriesFigure, meanLabel } from './experiments.ts';
export type { MeanSeries, MeanSeriesOptions } from './experiments.ts';
export { attributionScatterFigure, patchComparisonFigure, saliencyFigure } from './attribution.ts';
export type { AttributionScatterData, SaliencyData } from './attribution.ts';
export {
  attributionBarsFigure, attributionHeadsFigure, attributionSubject, flowGraphFigure, graphNodeRef, graphTokenShares, graphTokensFigure, neuronExamplesFigure, neuronInterventionFigure,
  neuronOutputFigure, neuronTextFigure, topNeuronsFigure,
} from './explain.ts';
export type { AttributionData, GraphData, GraphNodeRef, NeuronExamplesData, NeuronOutputData, NeuronsTopData } from './explain.ts';
