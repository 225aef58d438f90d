/**
 * The conntrack mark glassbox writes on every new egress flow it counts, so
 * that the detail stream (conntrack events) carries the kernel's own
 * decision: counted or not, local or forwarded, which rule matched, and the
 * socket owner's uid. Pure.
 *
 *   bit 31      1 = counted by the glassbox table
 *   bit 30      1 = forwarded (a device behind the recorder), 0 = local
 *   bits 29..20 class: 0 = undeclared, k = rule index k-1 (so at most 1023 rules)
 *   bits 19..0  uid of the local socket; 0xfffff = unknown (forwarded, no
 *               socket, or a uid >= 0xfffff)
 *
 * nftables cannot copy `meta skuid` into the mark directly (the types
 * differ), so the table copies it bit by bit (see ruleset.ts).
 */
export const MARK_COUNTED = 0x8000_0000;
export const MARK_FORWARDED = 0x4000_0000;
export const MARK_CLASS_SHIFT = 20;
export const MARK_CLASS_MASK = 0x3ff;
export const MARK_UID_BITS = 20;
export const MARK_UID_MASK = 0xf_ffff;
export const MARK_UID_UNKNOWN = MARK_UID_MASK;
/** Largest number of egress rules the mark can name. */
export const MAX_RULES = MARK_CLASS_MASK;

export interface DecodedMark {
  readonly direction: 'local' | 'forwarded';
  /** Index into the policy's rules, or null when the flow matched no rule. */
  readonly ruleIndex: number | null;
  readonly uid: number | null;
}

/** null when the mark was not written by glassbox (flow not counted by its table). */
export function decodeMark(mark: number): DecodedMark | null {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffff_ffff) return null;
  if ((mark & MARK_COUNTED) === 0) return null;
  const cls = (mark >>> MARK_CLASS_SHIFT) & MARK_CLASS_MASK;
  const uid = mark & MARK_UID_MASK;
  return {
    direction: (mark & MARK_FORWARDED) !== 0 ? 'forwarded' : 'local',
    ruleIndex: cls === 0 ? null : cls - 1,
    uid: uid === MARK_UID_UNKNOWN ? null : uid,
  };
}

export function encodeMark(m: DecodedMark): number {
  const cls = m.ruleIndex === null ? 0 : m.ruleIndex + 1;
  if (cls > MARK_CLASS_MASK) throw new RangeError(`rule index ${m.ruleIndex} does not fit the mark`);
  const uid = m.uid === null || m.uid >= MARK_UID_UNKNOWN ? MARK_UID_UNKNOWN : m.uid;
  return (MARK_COUNTED | (m.direction === 'forwarded' ? MARK_FORWARDED : 0) | (cls << MARK_CLASS_SHIFT) | uid) >>> 0;
}

export function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}
