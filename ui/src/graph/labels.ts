// Text that reaches a canvas comes from the cluster and the identity provider, so it may be anything: markup,
// hundreds of characters, invisible characters. Canvas text is inert (never parsed as HTML), but it can still
// mislead: a right-to-left override (U+202E) makes what follows it read backwards, a zero-width space makes
// "admin\u200b" look like "admin", and a 300-character name hides its neighbours. canvasLabel makes such text
// safe to paint; the DOM side panel shows the full name as Preact text.

// Bidirectional controls, shown as marks the way the console's Name component shows them in the DOM.
const bidi = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const bidiNames: Record<string, string> = {
  '\u061c': 'ALM', '\u200e': 'LRM', '\u200f': 'RLM', '\u202a': 'LRE', '\u202b': 'RLE', '\u202c': 'PDF', '\u202d': 'LRO',
  '\u202e': 'RLO', '\u2066': 'LRI', '\u2067': 'RLI', '\u2068': 'FSI', '\u2069': 'PDI',
};
// Other invisible characters (C0/C1 controls, zero-width spaces and joiners, the BOM) become a visible U+FFFD.
const invisible = /[\u0000-\u001f\u007f-\u009f\u200b-\u200d\u2060-\u2064\ufeff]/g;

/** canvasLabel makes hidden characters visible and cuts text to max code points with an ellipsis. */
export function canvasLabel(text: string, max = 40): string {
  const shown = text.replace(bidi, (c) => `⟨${bidiNames[c]}⟩`).replace(invisible, '\ufffd');
  const chars = Array.from(shown);
  return chars.length <= max ? shown : `${chars.slice(0, max - 1).join('')}…`;
}

/** fitText cuts text (already made safe by canvasLabel) until it fits width pixels in the context's font. */
export function fitText(ctx: CanvasRenderingContext2D, text: string, width: number): string {
  if (ctx.measureText(text).width <= width) return text;
  const chars = Array.from(text);
  let lo = 0;
  let hi = chars.length;
  // Binary search on the number of code points kept: measureText is the expensive part.
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ctx.measureText(`${chars.slice(0, mid).join('')}…`).width <= width) lo = mid;
    else hi = mid - 1;
  }
  return lo === 0 ? '…' : `${chars.slice(0, lo).join('')}…`;
}
