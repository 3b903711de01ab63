//! The RFC 3284 default instruction code table (the only one xdelta3 writes), for
//! decoding opcodes and for choosing the opcode of one or two instructions.

/// Near-cache slots (modes 2..=5).
pub const NEAR_SLOTS: usize = 4;
/// Same-cache groups (modes 6..=8).
pub const SAME_GROUPS: usize = 3;
/// Number of COPY address modes.
pub const COPY_MODES: u8 = 2 + NEAR_SLOTS as u8 + SAME_GROUPS as u8;

/// One half of a code table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Op {
    /// No instruction (empty second half of a single-instruction opcode).
    #[default]
    Noop,
    /// ADD: copy `size` literal bytes from the data section.
    Add,
    /// RUN: repeat one data-section byte `size` times.
    Run,
    /// COPY with its address mode.
    Copy(u8),
}

/// One half of an opcode: the instruction and its size, 0 meaning "a varint follows".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Half {
    /// The instruction.
    pub op: Op,
    /// Its size in bytes; 0 means the size is a varint in the instruction section.
    pub size: u8,
}

/// The 256 opcodes of the default table.
pub struct CodeTable {
    /// First and second instruction of each opcode, indexed by opcode byte.
    pub entries: [(Half, Half); 256],
}

impl CodeTable {
    /// Builds RFC 3284's default table (section 5.6), in xdelta3's construction order.
    pub fn rfc3284() -> CodeTable {
        let mut e = [(Half::default(), Half::default()); 256];
        let mut i = 0;
        let mut put = |first: Half, second: Half| {
            e[i] = (first, second);
            i += 1;
        };
        let none = Half::default();
        put(
            Half {
                op: Op::Run,
                size: 0,
            },
            none,
        );
        for size in 0..=17 {
            put(Half { op: Op::Add, size }, none);
        }
        for mode in 0..COPY_MODES {
            put(
                Half {
                    op: Op::Copy(mode),
                    size: 0,
                },
                none,
            );
            for size in 4..=18 {
                put(
                    Half {
                        op: Op::Copy(mode),
                        size,
                    },
                    none,
                );
            }
        }
        for mode in 0..COPY_MODES {
            let max = if mode < 2 + NEAR_SLOTS as u8 { 6 } else { 4 };
            for add in 1..=4 {
                for copy in 4..=max {
                    put(
                        Half {
                            op: Op::Add,
                            size: add,
                        },
                        Half {
                            op: Op::Copy(mode),
                            size: copy,
                        },
                    );
                }
            }
        }
        for mode in 0..COPY_MODES {
            put(
                Half {
                    op: Op::Copy(mode),
                    size: 4,
                },
                Half {
                    op: Op::Add,
                    size: 1,
                },
            );
        }
        debug_assert_eq!(i, 256);
        CodeTable { entries: e }
    }
}

/// Opcode for a lone ADD of `size` bytes and whether the size follows as a varint.
#[inline]
pub fn add_opcode(size: u64) -> (u8, bool) {
    if (1..=17).contains(&size) {
        (1 + size as u8, false)
    } else {
        (1, true)
    }
}

/// Opcode for a lone RUN (its size always follows).
pub const RUN_OPCODE: u8 = 0;

/// Opcode for a lone COPY and whether the size follows as a varint.
#[inline]
pub fn copy_opcode(size: u64, mode: u8) -> (u8, bool) {
    let base = 19 + 16 * mode;
    if (4..=18).contains(&size) {
        (base + (size as u8 - 3), false)
    } else {
        (base, true)
    }
}

/// Opcode for ADD(`add`) immediately followed by COPY(`copy`, `mode`), if the table has one.
#[inline]
pub fn add_copy_opcode(add: u64, copy: u64, mode: u8) -> Option<u8> {
    if !(1..=4).contains(&add) {
        return None;
    }
    let (a, c) = (add as u8, copy as u8);
    if mode < 6 {
        (4..=6)
            .contains(&copy)
            .then(|| 163 + 12 * mode + 3 * (a - 1) + (c - 4))
    } else {
        (copy == 4).then(|| 235 + 4 * (mode - 6) + (a - 1))
    }
}

/// Opcode for COPY(`copy`, `mode`) immediately followed by ADD(`add`), if the table has one.
#[inline]
pub fn copy_add_opcode(copy: u64, mode: u8, add: u64) -> Option<u8> {
    (copy == 4 && add == 1).then_some(247 + mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_landmarks() {
        let t = CodeTable::rfc3284();
        assert_eq!(t.entries[0].0.op, Op::Run);
        assert_eq!(
            t.entries[1].0,
            Half {
                op: Op::Add,
                size: 0
            }
        );
        assert_eq!(
            t.entries[18].0,
            Half {
                op: Op::Add,
                size: 17
            }
        );
        assert_eq!(
            t.entries[19].0,
            Half {
                op: Op::Copy(0),
                size: 0
            }
        );
        assert_eq!(
            t.entries[162].0,
            Half {
                op: Op::Copy(8),
                size: 18
            }
        );
        assert_eq!(
            t.entries[163],
            (
                Half {
                    op: Op::Add,
                    size: 1
                },
                Half {
                    op: Op::Copy(0),
                    size: 4
                }
            )
        );
        assert_eq!(
            t.entries[246],
            (
                Half {
                    op: Op::Add,
                    size: 4
                },
                Half {
                    op: Op::Copy(8),
                    size: 4
                }
            )
        );
        assert_eq!(
            t.entries[255],
            (
                Half {
                    op: Op::Copy(8),
                    size: 4
                },
                Half {
                    op: Op::Add,
                    size: 1
                }
            )
        );
    }

    proptest! {
        #[test]
        fn chosen_opcodes_decode_back(size in 0u64..40, second in 0u64..10, mode in 0u8..COPY_MODES) {
            let t = CodeTable::rfc3284();
            let sized = |h: Half, explicit: bool, want: u64| if explicit { h.size == 0 } else { u64::from(h.size) == want };
            let (op, explicit) = add_opcode(size);
            let (h, n) = t.entries[op as usize];
            prop_assert!(h.op == Op::Add && sized(h, explicit, size) && n.op == Op::Noop);
            let (op, explicit) = copy_opcode(size, mode);
            let (h, n) = t.entries[op as usize];
            prop_assert!(h.op == Op::Copy(mode) && sized(h, explicit, size) && n.op == Op::Noop);
            if let Some(op) = add_copy_opcode(second, size, mode) {
                let (a, c) = t.entries[op as usize];
                prop_assert_eq!(a, Half { op: Op::Add, size: second as u8 });
                prop_assert_eq!(c, Half { op: Op::Copy(mode), size: size as u8 });
            }
            if let Some(op) = copy_add_opcode(size, mode, second) {
                let (c, a) = t.entries[op as usize];
                prop_assert_eq!(a, Half { op: Op::Add, size: second as u8 });
                prop_assert_eq!(c, Half { op: Op::Copy(mode), size: size as u8 });
            }
        }
    }
}
