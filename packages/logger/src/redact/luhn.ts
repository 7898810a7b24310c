/**
 * The Luhn check (ISO/IEC 7812-1 Annex B): every payment card number passes it, and
 * nine in ten random digit strings do not, so a run of 13 to 19 digits that passes is
 * treated as a card number.
 */

/** True when the digits of `value` (other characters ignored) pass the Luhn check. */
export function passesLuhn(value: string): boolean {
  let sum = 0;
  let double = false;
  let digits = 0;
  for (let i = value.length - 1; i >= 0; i--) {
    const code = value.charCodeAt(i);
    if (code < 48 || code > 57) continue;
    let digit = code - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
    digits++;
  }
  return digits >= 13 && digits <= 19 && sum % 10 === 0;
}

/**
 * True when `value` has a run of at least 13 digits, single spaces or dashes allowed
 * between them (the shortest card number, as people write it). One linear pass; most
 * strings (UUIDs, versions, timestamps split by punctuation) end it early.
 */
export function hasCardLengthDigits(value: string): boolean {
  let run = 0;
  let separated = false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 48 && code <= 57) {
      if (++run >= 13) return true;
      separated = false;
    } else if ((code === 32 || code === 45) && run > 0 && !separated) {
      separated = true;
    } else {
      run = 0;
      separated = false;
    }
  }
  return false;
}
