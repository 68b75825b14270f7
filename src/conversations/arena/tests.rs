//! Unit tests for the text arena.

use super::*;

#[test]
fn stores_strings_and_nulls_in_order() {
    let mut arena = TextArena::<u32>::new();
    for value in [Some("a1"), None, Some(""), Some("ünïcode")] {
        arena.push(value).unwrap();
    }
    assert_eq!(arena.len(), 4);
    assert_eq!(arena.get(0), Some("a1"));
    assert_eq!(arena.get(1), None);
    assert_eq!(arena.text(1), "");
    assert_eq!(arena.get(2), Some(""));
    assert_eq!(arena.get(3), Some("ünïcode"));
    assert_eq!(arena.get(4), None);
}

#[test]
fn reports_full_when_offsets_overflow() {
    #[derive(Clone, Copy)]
    struct Tiny(u8);
    impl TryFrom<usize> for Tiny {
        type Error = ();
        fn try_from(value: usize) -> Result<Self, ()> {
            u8::try_from(value).map(Tiny).map_err(|_| ())
        }
    }
    impl ArenaOffset for Tiny {
        fn position(self) -> usize {
            self.0 as usize
        }
    }
    let mut arena = TextArena::<Tiny>::new();
    let long = "x".repeat(200);
    arena.push(Some(&long)).unwrap();
    assert_eq!(arena.push(Some(&long)), Err(ArenaFull));
}
