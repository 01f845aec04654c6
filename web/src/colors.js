// One colour per delegation, the same in every browser: a hash of the
// delegation code picks one of the palette's classes (styles.css). The
// chair's office has its own colour; "" is text from before any edit.

const PALETTE = 12;

export function colorIndex(author) {
  let h = 2166136261;
  for (let i = 0; i < author.length; i++) {
    h ^= author.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % PALETTE;
}

export function colorClass(author) {
  if (!author) return "c-orig";
  if (author === "chair") return "c-chair";
  return `c-${colorIndex(author)}`;
}
