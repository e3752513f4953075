//! Random input: the parser never panics, always makes progress, and parsing a stream
//! in any pieces gives the same requests as parsing it whole.

use proptest::prelude::*;

use super::super::{discard, parse, Limits, Parsed};

/// One thing the parser said, in an owned form comparable across runs.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Request {
        command: String,
        consumed: usize,
        skip: u64,
    },
    Fatal(String),
}

/// Feeds `stream` cut at `cuts` (sorted positions) and records every event; also
/// returns the bytes left unparsed and the pending skip at the end.
fn drive(stream: &[u8], cuts: &[usize], limits: &Limits) -> (Vec<Event>, Vec<u8>, u64) {
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut skip = 0u64;
    let mut prev = 0;
    let ends = cuts.iter().copied().chain(std::iter::once(stream.len()));
    'feed: for end in ends {
        let end = end.clamp(prev, stream.len());
        buf.extend_from_slice(&stream[prev..end]);
        prev = end;
        loop {
            let n = discard(&mut skip, buf.len());
            buf.drain(..n);
            if skip > 0 {
                break;
            }
            match parse(&buf, limits, 1_700_000_000) {
                Ok(Parsed::Request(r)) => {
                    assert!(
                        r.consumed > 0 && r.consumed <= buf.len(),
                        "progress within the buffer"
                    );
                    events.push(Event::Request {
                        command: format!("{:?}", r.command),
                        consumed: r.consumed,
                        skip: r.skip,
                    });
                    skip = r.skip;
                    buf.drain(..r.consumed);
                }
                Ok(Parsed::Incomplete { need }) => {
                    assert!(need > buf.len(), "need {need} with {} buffered", buf.len());
                    break;
                }
                Err(e) => {
                    events.push(Event::Fatal(e.to_string()));
                    buf.clear(); // the connection closes: what else arrived is moot
                    break 'feed;
                }
            }
        }
    }
    (events, buf, skip)
}

/// Pieces of protocol, valid and not, to build streams from.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"get a b c\r\n",
        b"gets k\r\n",
        b"gat 10 a b\r\n",
        b"gats -1 a\r\n",
        b"set k 1 2 3\r\nabc\r\n",
        b"set k 0 0 3 noreply\r\nabc\r\n",
        b"add k 0 0 0\r\n\r\n",
        b"cas k 0 0 2 9\r\nhi\r\n",
        b"append k 0 0 1\r\nx\r\n",
        b"set k 0 0 3\r\nabcd\r\n",
        b"set k x 0 4\r\nabcd\r\n",
        b"set k 0 0 5000\r\n",
        b"delete k\r\n",
        b"delete k 0 noreply\r\n",
        b"incr k 5\r\n",
        b"decr k x\r\n",
        b"touch k 10\r\n",
        b"flush_all 5 noreply\r\n",
        b"version\r\n",
        b"verbosity 1\r\n",
        b"stats items\r\n",
        b"quit\r\n",
        b"mn\r\n",
        b"me k\r\n",
        b"mg k v c f s t k Oab q\r\n",
        b"mg dGVzdA== b k v\r\n",
        b"ms k 2 T10 F3 c k MA\r\nhi\r\n",
        b"ms k 3 Z\r\nabc\r\n",
        b"ms k 9999999 q\r\n",
        b"md k q C1 I T3\r\n",
        b"ma k N0 J4 D2 MD v t c\r\n",
        b"ma k Mx\r\n",
        b"mg k v v\r\n",
        b"bogus\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"noreply",
        b"get ",
        b"\x80",
        b"\x00\xff",
        b"                                                  ",
    ];
    prop_oneof![
        8 => proptest::sample::select(fixed).prop_map(|p| p.to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => proptest::collection::vec(prop_oneof![Just(b' '), Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b'0')], 0..12),
    ]
}

fn small_limits() -> Limits {
    Limits {
        max_line: 108,
        max_get_line: 200,
        max_item_size: 4096,
    }
}

#[test]
fn leading_spaces_before_a_long_get_split_anywhere() {
    let limits = small_limits();
    let mut stream = vec![b' '; 90];
    stream.extend_from_slice(b"get");
    for i in 0..12 {
        stream.extend_from_slice(format!(" key{i}").as_bytes());
    }
    stream.extend_from_slice(b"\r\nmn\r\n");
    assert!(stream.len() > limits.max_line);
    let whole = drive(&stream, &[], &limits);
    assert_eq!(whole.0.len(), 2, "{whole:?}");
    for cut in 0..stream.len() {
        assert_eq!(drive(&stream, &[cut], &limits), whole, "cut at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn any_split_parses_like_the_whole(
        pieces in proptest::collection::vec(piece(), 0..24),
        mut cuts in proptest::collection::vec(0usize..2000, 0..12),
        small in any::<bool>(),
    ) {
        let stream = pieces.concat();
        let limits = if small { small_limits() } else { Limits::default() };
        cuts.iter_mut().for_each(|c| *c %= stream.len() + 1);
        cuts.sort_unstable();
        let whole = drive(&stream, &[], &limits);
        let split = drive(&stream, &cuts, &limits);
        prop_assert_eq!(&whole, &split);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&whole, &drive(&stream, &bytewise, &limits));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), small in any::<bool>()) {
        let limits = if small { small_limits() } else { Limits::default() };
        drive(&bytes, &[], &limits);
    }
}
