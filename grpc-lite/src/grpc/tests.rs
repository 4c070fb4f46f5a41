use super::*;

fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut v = vec![flag];
    v.extend_from_slice(&(message.len() as u32).to_be_bytes());
    v.extend_from_slice(message);
    v
}

#[test]
fn one_frame_in_one_piece_or_split_anywhere() {
    let bytes = frame(0, b"hello world");
    for cut in 0..=bytes.len() {
        let mut frames = Frames::new(Direction::Request);
        frames
            .push(Bytes::copy_from_slice(&bytes[..cut]))
            .expect("first part");
        frames
            .push(Bytes::copy_from_slice(&bytes[cut..]))
            .expect("second part");
        assert_eq!(
            frames.finish().expect("complete").as_deref(),
            Some(&b"hello world"[..]),
            "cut at {cut}"
        );
    }
}

#[test]
fn keeps_the_first_of_several_messages() {
    let mut bytes = frame(0, b"one");
    bytes.extend(frame(0, b"two"));
    let mut frames = Frames::new(Direction::Request);
    frames.push(Bytes::from(bytes)).expect("frames");
    assert_eq!(frames.finish().expect("ok").as_deref(), Some(&b"one"[..]));
    let frames = Frames::new(Direction::Request);
    assert_eq!(frames.finish().expect("empty body"), None);
}

#[test]
fn bad_frames_get_tonics_statuses() {
    let mut frames = Frames::new(Direction::Request);
    let err = frames
        .push(Bytes::from(frame(1, b"x")))
        .expect_err("compressed");
    assert_eq!(err.code(), Code::Internal);
    assert!(
        err.message().contains("compressed-flag"),
        "{}",
        err.message()
    );

    let mut frames = Frames::new(Direction::Request);
    let err = frames
        .push(Bytes::from(frame(7, b"x")))
        .expect_err("bad flag");
    assert_eq!(err.code(), Code::Internal);
    assert!(err.message().contains("invalid compression flag: 7"));

    let mut frames = Frames::new(Direction::Request);
    let mut huge = vec![0u8];
    huge.extend_from_slice(&(MAX_MESSAGE_SIZE as u32 + 1).to_be_bytes());
    let err = frames.push(Bytes::from(huge)).expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange);

    let mut frames = Frames::new(Direction::Request);
    frames
        .push(Bytes::from_static(&[0, 0, 0, 0, 9, 1, 2]))
        .expect("partial");
    let err = frames.finish().expect_err("truncated");
    assert_eq!(err.message(), "Unexpected EOF decoding stream.");
}

#[test]
fn timeouts_round_trip_in_tonics_units() {
    assert_eq!(timeout_value(Duration::from_secs(5)), "5000000u");
    assert_eq!(timeout_value(Duration::from_millis(300)), "300000u");
    assert_eq!(timeout_value(Duration::from_nanos(50)), "50n");
    assert_eq!(timeout_value(Duration::from_secs(3600)), "3600000m");
    let mut headers = HeaderMap::new();
    for (value, expected) in [
        ("5000000u", Some(Duration::from_secs(5))),
        ("2S", Some(Duration::from_secs(2))),
        ("1H", Some(Duration::from_secs(3600))),
        ("10m", Some(Duration::from_millis(10))),
        ("123456789n", None),
        ("10x", None),
        ("S", None),
        ("", None),
    ] {
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static(value));
        assert_eq!(parse_timeout(&headers), expected, "{value:?}");
    }
}

#[test]
fn final_status_reads_trailers_or_maps_http() {
    let mut trailers = HeaderMap::new();
    trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
    assert!(final_status(Some(&trailers), StatusCode::OK).is_ok());
    trailers.insert(GRPC_STATUS, HeaderValue::from_static("5"));
    trailers.insert("grpc-message", HeaderValue::from_static("no%20such"));
    let err = final_status(Some(&trailers), StatusCode::OK).expect_err("not found");
    assert_eq!((err.code(), err.message()), (Code::NotFound, "no such"));
    let err = final_status(None, StatusCode::OK).expect_err("missing");
    assert_eq!(err.code(), Code::Unknown);
    let err = final_status(None, StatusCode::SERVICE_UNAVAILABLE).expect_err("503");
    assert_eq!(err.code(), Code::Unavailable);
    // Broken details do not panic; the rest of the status survives.
    trailers.insert(GRPC_STATUS_DETAILS, HeaderValue::from_static("!!!"));
    let err = final_status(Some(&trailers), StatusCode::OK).expect_err("not found");
    assert_eq!((err.code(), err.details()), (Code::NotFound, &b""[..]));
}

#[test]
fn base64_check() {
    for ok in ["", "YQ", "YQ==", "YWJj", "YWJjZA", "a+/b"] {
        assert!(valid_base64(ok.as_bytes()), "{ok}");
    }
    for bad in ["Y", "YR", "!!", "YWJ=j", "YQ==="] {
        assert!(!valid_base64(bad.as_bytes()), "{bad}");
    }
}
