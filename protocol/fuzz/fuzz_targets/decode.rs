//! Feeds arbitrary bytes to `decode` and, split in two chunks, to a `FrameBuffer`.
//! Any panic is a bug; so is a decoded frame that does not survive re-encoding.
#![no_main]

use groupcached_protocol::{decode, Frame, FrameBuffer, Limits};
use libfuzzer_sys::fuzz_target;

fn check_decode(data: &[u8], limits: &Limits) {
    match decode(data, limits) {
        Ok(Some((frame, used))) => {
            assert!(used <= data.len());
            let mut again = Vec::new();
            match frame {
                Frame::Request(r) => r.encode(&mut again),
                Frame::Response(r) => r.encode(&mut again),
            }
            let (back, n) = decode(&again, &Limits::default()).unwrap().unwrap();
            assert_eq!(back, frame);
            assert_eq!(n, again.len());
        }
        Ok(None) => {}
        Err(e) => assert_eq!(e.skip.is_none(), e.error.is_fatal()),
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where the FrameBuffer input is split and which frame
    // limit applies, so the fuzzer explores both.
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let limits = if control & 1 == 0 {
        Limits::default()
    } else {
        Limits::with_max_frame(64)
    };
    check_decode(data, &limits);

    let split = (control as usize * data.len()) / 256;
    let mut fb = FrameBuffer::new(limits, 0);
    for chunk in [&data[..split], &data[split..]] {
        fb.extend_from_slice(chunk);
        loop {
            match fb.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) if e.error.is_fatal() => return,
                Err(_) => {}
            }
        }
    }
});
