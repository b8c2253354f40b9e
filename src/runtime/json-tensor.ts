// Tensors written as nested JSON arrays (no-code requests: docs/no-code.md), shared by the ONNX scorer and
// the MLflow batcher. Iterative on purpose: JSON.parse takes arrays nested 100,000 deep, and a recursive
// walk (Array.prototype.flat(Infinity) included) would throw RangeError out of the request handler and
// take the instance host down with it.

/** More dimensions than any model takes (numpy's own limit is 32 as well). */
export const MAX_TENSOR_DIMS = 32;

/**
 * The leaves of `value` in row-major order, or why it is not a tensor. With `shape`, every array must
 * have that dimension's length and every leaf sit at the innermost level (a ragged array whose count of
 * values happens to match is refused too); without it, any nesting up to MAX_TENSOR_DIMS is flattened
 * (OIP data may be flat or nested).
 */
export function flattenTensor(value: unknown, shape?: readonly number[]): unknown[] | string {
  if (!Array.isArray(value)) {
    if (shape !== undefined && shape.length > 0) return `a value where a list of ${shape[0]} was expected`;
    return [value];
  }
  if (shape !== undefined && value.length !== (shape[0] ?? -1)) return `a list of ${value.length} where ${shape.length ? shape[0] : 'a value'} was expected`;
  const out: unknown[] = [];
  const stack: { items: unknown[]; next: number }[] = [{ items: value, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const v = top.items[top.next++];
    // v is an element of dimension stack.length (0-based).
    const dim = stack.length;
    if (Array.isArray(v)) {
      if (dim >= MAX_TENSOR_DIMS) return `more than ${MAX_TENSOR_DIMS} dimensions`;
      if (shape !== undefined && (dim >= shape.length || v.length !== shape[dim])) {
        return dim >= shape.length ? `a list at depth ${dim + 1}, deeper than the ${shape.length} dimensions of the first values` : `a list of ${v.length} at depth ${dim + 1} where the first has ${shape[dim]} (rows of different lengths)`;
      }
      stack.push({ items: v, next: 0 });
    } else {
      if (shape !== undefined && dim !== shape.length) return `a value at depth ${dim} where a list of ${shape[dim]} was expected (rows of different lengths)`;
      out.push(v);
    }
  }
  return out;
}

/** The shape of a nested JSON array read from its first elements (flattenTensor then checks the rest). */
export function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  let v = value;
  while (Array.isArray(v) && shape.length <= MAX_TENSOR_DIMS) {
    shape.push(v.length);
    v = v[0];
  }
  return shape;
}
