//! The VCDIFF address cache (RFC 3284 section 5.1-5.3) with the default 4 near slots and
//! 3 same groups, reset at the start of every window.

use super::code_table::{NEAR_SLOTS, SAME_GROUPS};
use super::varint;

const SAME_SIZE: usize = SAME_GROUPS * 256;
const MODE_SELF: u8 = 0;
const MODE_HERE: u8 = 1;
const FIRST_NEAR: u8 = 2;
const FIRST_SAME: u8 = FIRST_NEAR + NEAR_SLOTS as u8;

/// Why an address could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// The address section ended inside the address.
    Truncated,
    /// Unknown mode, varint overflow, or an address not before `here`.
    Invalid,
}

/// Near and same caches shared by encoder and decoder.
#[derive(Clone)]
pub struct AddressCache {
    near: [u64; NEAR_SLOTS],
    next_near: usize,
    same: Box<[u64; SAME_SIZE]>,
}

impl Default for AddressCache {
    fn default() -> Self {
        AddressCache {
            near: [0; NEAR_SLOTS],
            next_near: 0,
            same: Box::new([0; SAME_SIZE]),
        }
    }
}

impl AddressCache {
    /// Empties the caches (start of a window).
    pub fn reset(&mut self) {
        self.near = [0; NEAR_SLOTS];
        self.next_near = 0;
        self.same.fill(0);
    }

    #[inline]
    fn update(&mut self, addr: u64) {
        self.near[self.next_near] = addr;
        self.next_near = (self.next_near + 1) % NEAR_SLOTS;
        self.same[(addr % SAME_SIZE as u64) as usize] = addr;
    }

    /// Decodes the address of a COPY in `mode` at position `here`, reading from `addrs`.
    /// The result is below `here`.
    #[inline]
    pub fn decode(
        &mut self,
        here: u64,
        mode: u8,
        addrs: &[u8],
        pos: &mut usize,
    ) -> Result<u64, AddressError> {
        if mode >= FIRST_SAME + SAME_GROUPS as u8 {
            return Err(AddressError::Invalid);
        }
        let addr = if mode >= FIRST_SAME {
            let byte = *addrs.get(*pos).ok_or(AddressError::Truncated)?;
            *pos += 1;
            self.same[usize::from(mode - FIRST_SAME) * 256 + usize::from(byte)]
        } else {
            let v = varint::read(addrs, pos).map_err(|e| match e {
                varint::VarintError::Truncated => AddressError::Truncated,
                varint::VarintError::Overflow => AddressError::Invalid,
            })?;
            match mode {
                MODE_SELF => v,
                MODE_HERE => here.checked_sub(v).ok_or(AddressError::Invalid)?,
                m if m < FIRST_SAME => self.near[usize::from(m - FIRST_NEAR)]
                    .checked_add(v)
                    .ok_or(AddressError::Invalid)?,
                _ => return Err(AddressError::Invalid),
            }
        };
        if addr >= here {
            return Err(AddressError::Invalid);
        }
        self.update(addr);
        Ok(addr)
    }

    /// Chooses the cheapest mode for `addr` (below `here`), appends its encoding to `out`
    /// and returns the mode.
    #[inline]
    pub fn encode(&mut self, addr: u64, here: u64, out: &mut Vec<u8>) -> u8 {
        debug_assert!(addr < here);
        let slot = (addr % SAME_SIZE as u64) as usize;
        if self.same[slot] == addr {
            self.update(addr);
            out.push((slot % 256) as u8);
            return FIRST_SAME + (slot / 256) as u8;
        }
        let mut best_mode = MODE_SELF;
        let mut best_value = addr;
        let mut best_len = varint::len(addr);
        let d = here - addr;
        if varint::len(d) < best_len {
            best_mode = MODE_HERE;
            best_value = d;
            best_len = varint::len(d);
        }
        for (i, &near) in self.near.iter().enumerate() {
            if let Some(d) = addr.checked_sub(near)
                && varint::len(d) < best_len
            {
                best_mode = FIRST_NEAR + i as u8;
                best_value = d;
                best_len = varint::len(d);
            }
        }
        self.update(addr);
        varint::write(out, best_value);
        best_mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encode_decode_round_trip(steps in proptest::collection::vec((1u64..1_000_000, 0u64..1_000_000), 1..200)) {
            let mut enc = AddressCache::default();
            let mut dec = AddressCache::default();
            let mut buf = Vec::new();
            let mut modes = Vec::new();
            let mut expected = Vec::new();
            for &(here, back) in &steps {
                let addr = here - 1 - back % here;
                modes.push((enc.encode(addr, here, &mut buf), here));
                expected.push(addr);
            }
            let mut pos = 0;
            for (&(mode, here), &addr) in modes.iter().zip(&expected) {
                prop_assert_eq!(dec.decode(here, mode, &buf, &mut pos), Ok(addr));
            }
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32), here in any::<u64>(), modes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut dec = AddressCache::default();
            let mut pos = 0;
            for m in modes {
                if let Ok(a) = dec.decode(here, m, &bytes, &mut pos) {
                    prop_assert!(a < here);
                }
            }
        }
    }

    #[test]
    fn reset_forgets() {
        let mut c = AddressCache::default();
        let mut out = Vec::new();
        c.encode(1000, 5000, &mut out);
        let mode = c.encode(1000, 5000, &mut out);
        assert!(mode >= FIRST_SAME);
        c.reset();
        assert!(c.encode(1000, 5000, &mut out) < FIRST_SAME);
    }
}
