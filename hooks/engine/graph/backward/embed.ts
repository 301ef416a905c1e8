/** The backward pass of graph/embed.ts: the residual stream entering block 0 is hook_embed + hook_pos_embed, so each gets its gradient. */
import type { GradContext } from './context.ts';

/** dResid, the gradient of the residual stream entering block 0 [batch, pos, d_model] -> hook_embed's and hook_pos_embed's gradients. */
export function embeddingsBackward(g: GradContext, dResid: string): void {
  // Nothing lies upstream of the embeddings that has a gradient (the tokens are integers).
  g.grad('hook_embed', dResid);
  g.grad('hook_pos_embed', dResid);
}
