//! Fuzzes the chunked-body decoder differentially: the same input fed whole and fed in pieces
//! (cut where the fuzzer's first bytes say) must give the same data and the same verdict, the
//! decoder must never claim more input than it was given, and a body it accepts must re-encode
//! to framing that decodes to the same data.

#![no_main]

use confab::http1::chunked::{
    write_chunk_header, write_chunk_trailer, ChunkedDecoder, Decoded, LAST_CHUNK,
};
use libfuzzer_sys::fuzz_target;

/// What decoding produced: the data, and whether the body ended (`Ok(true)`), needs more
/// (`Ok(false)`) or was refused.
type Outcome = (Vec<u8>, Result<bool, ()>);

fuzz_target!(|data: &[u8]| {
    let Some((&cut_seed, input)) = data.split_first() else {
        return;
    };
    let whole = decode_in_pieces(input, input.len().max(1));
    let pieces = decode_in_pieces(input, usize::from(cut_seed % 7) + 1);
    assert_eq!(whole, pieces, "piece size changed the outcome");
    if let (body, Ok(true)) = &whole {
        let reencoded = encode(body);
        let (again, verdict) = decode_in_pieces(&reencoded, reencoded.len());
        assert_eq!(verdict, Ok(true));
        assert_eq!(&again, body);
    }
});

fn decode_in_pieces(input: &[u8], piece: usize) -> Outcome {
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for part in input.chunks(piece) {
        pending.extend_from_slice(part);
        loop {
            let (used, found) = match decoder.decode(&pending) {
                Ok(step) => step,
                Err(_) => return (body, Err(())),
            };
            assert!(used <= pending.len(), "consumed more than given");
            if let Decoded::Data(range) = &found {
                assert!(range.end <= used);
                body.extend_from_slice(&pending[range.clone()]);
            }
            pending.drain(..used);
            match found {
                Decoded::Done => return (body, Ok(true)),
                Decoded::NeedMore => break,
                Decoded::Data(_) if pending.is_empty() => break,
                Decoded::Data(_) => {}
            }
        }
    }
    (body, Ok(false))
}

fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(1000).filter(|chunk| !chunk.is_empty()) {
        write_chunk_header(chunk.len(), &mut out);
        out.extend_from_slice(chunk);
        write_chunk_trailer(&mut out);
    }
    out.extend_from_slice(LAST_CHUNK);
    out
}
