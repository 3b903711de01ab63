//! Canonical Huffman codes from code lengths (RFC 1951 3.2.2): a lookup table to decode and
//! the codes to encode, both made from the lengths a block records.

use std::io::Read;
use std::sync::OnceLock;

use super::bits::BitReader;
use crate::{Error, Input, Result};

const MAX_BITS: usize = 15;

/// A code made from its lengths: decoding table and per-symbol codes.
pub(crate) struct Code {
    /// Indexed by the next `max_len` bits of input: `symbol | length << 16`, length 0 where
    /// no code starts with those bits.
    table: Vec<u32>,
    max_len: u32,
    /// Per symbol: its code, bit-reversed for writing low bit first, and its length.
    codes: Vec<(u16, u8)>,
}

impl Code {
    /// The code with these lengths (0 = symbol unused). An over-subscribed set is invalid;
    /// an incomplete one is allowed, and its missing codes fail when met.
    pub(crate) fn new(lens: &[u8], input: Input) -> Result<Code> {
        let mut count = [0u16; MAX_BITS + 1];
        for &l in lens {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = (left << 1) - i32::from(c);
            if left < 0 {
                return Err(Error::Invalid {
                    input,
                    reason: "an over-subscribed Huffman code",
                });
            }
        }
        let mut next = [0u16; MAX_BITS + 1];
        let mut code = 0u16;
        for bits in 1..=MAX_BITS {
            code = (code + count[bits - 1]) << 1;
            next[bits] = code;
        }
        let max_len = lens.iter().copied().max().unwrap_or(0) as u32;
        let mut table = vec![0u32; 1 << max_len];
        let mut codes = vec![(0u16, 0u8); lens.len()];
        for (sym, &l) in lens.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let c = next[l as usize];
            next[l as usize] += 1;
            let reversed = c.reverse_bits() >> (16 - u32::from(l));
            codes[sym] = (reversed, l);
            let entry = sym as u32 | u32::from(l) << 16;
            let step = 1usize << l;
            let mut i = reversed as usize;
            while i < table.len() {
                table[i] = entry;
                i += step;
            }
        }
        Ok(Code {
            table,
            max_len,
            codes,
        })
    }

    /// Decodes one symbol; returns it with the bits it took (low bit first) and their count.
    pub(crate) fn decode<R: Read>(
        &self,
        r: &mut BitReader<R>,
        input: Input,
    ) -> Result<(u16, u32, u32)> {
        let (v, have) = r.peek(self.max_len)?;
        let entry = self.table[v as usize];
        let len = entry >> 16;
        if len == 0 {
            return Err(if have < self.max_len {
                Error::Truncated(input)
            } else {
                Error::Invalid {
                    input,
                    reason: "bits that are no code of the block's table",
                }
            });
        }
        if len > have {
            return Err(Error::Truncated(input));
        }
        r.consume(len);
        Ok(((entry & 0xffff) as u16, v & ((1 << len) - 1), len))
    }

    /// The code of `sym` (bit-reversed) and its length, if the table has one.
    pub(crate) fn encode(&self, sym: u16) -> Option<(u16, u8)> {
        match self.codes.get(sym as usize) {
            Some(&(c, l)) if l > 0 => Some((c, l)),
            _ => None,
        }
    }
}

/// The fixed literal/length and distance codes (BTYPE 1).
pub(crate) fn fixed() -> &'static (Code, Code) {
    static FIXED: OnceLock<(Code, Code)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut lit = [0u8; 288];
        lit[..144].fill(8);
        lit[144..256].fill(9);
        lit[256..280].fill(7);
        lit[280..].fill(8);
        let dist = [5u8; 32];
        (
            Code::new(&lit, Input::Deflate).expect("the fixed code is complete"),
            Code::new(&dist, Input::Deflate).expect("the fixed code is complete"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_codes_follow_the_rfc_example() {
        // RFC 1951 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) give F=00, A=010 ... H=1111.
        let code = Code::new(&[3, 3, 3, 3, 3, 2, 4, 4], Input::Deflate).unwrap();
        let msb_first = |sym: u16| {
            let (c, l) = code.encode(sym).unwrap();
            (c.reverse_bits() >> (16 - u32::from(l)), l)
        };
        assert_eq!(msb_first(5), (0b00, 2));
        assert_eq!(msb_first(0), (0b010, 3));
        assert_eq!(msb_first(4), (0b110, 3));
        assert_eq!(msb_first(7), (0b1111, 4));
    }

    #[test]
    fn over_subscribed_lengths_are_refused() {
        assert!(Code::new(&[1, 1, 1], Input::Deflate).is_err());
        assert!(
            Code::new(&[1, 2], Input::Deflate).is_ok(),
            "incomplete is allowed"
        );
    }
}
