//! The attach socket's framing, spoken by berth-shim (server) and the
//! engine (client). Every message both ways is a frame in the layout of
//! Docker's multiplexed stream: one byte of kind, three zero bytes, the
//! payload's length (u32, big-endian), the payload. Docker's kinds 0, 1
//! and 2 (stdin, stdout, stderr) carry data, so the API server can pass
//! output on as it is; the rest are berth's control messages.

/// Data for the container's stdin (client to shim).
pub const STDIN: u8 = 0;
/// The container's stdout, or its terminal's output (shim to client).
pub const STDOUT: u8 = 1;
/// The container's stderr (shim to client).
pub const STDERR: u8 = 2;
/// New terminal size: rows, then columns, as u16 big-endian (client to shim).
pub const RESIZE: u8 = 10;
/// The client's input has ended (client to shim).
pub const CLOSE_STDIN: u8 = 11;
/// The container has exited; payload its status, i32 big-endian (shim
/// to client, the last frame).
pub const EXIT: u8 = 12;
/// The container could not be started; payload the reason (shim to
/// client, the last frame).
pub const ERROR: u8 = 13;

/// The largest payload either side accepts: a longer frame is an error
/// and ends the connection.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The socket's name in the container's bundle directory.
pub const SOCKET: &str = "attach.sock";

/// One frame, ready to write.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&[kind, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Why a byte stream is not a stream of frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame(pub usize);

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "attach frame of {} bytes (at most {MAX_PAYLOAD})",
            self.0
        )
    }
}

/// Takes the first complete frame off `buf`: its kind and payload. None
/// while the frame is incomplete.
pub fn take(buf: &mut Vec<u8>) -> Result<Option<(u8, Vec<u8>)>, BadFrame> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(BadFrame(len));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let kind = buf[0];
    let payload = buf[8..8 + len].to_vec();
    buf.drain(..8 + len);
    Ok(Some((kind, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_whole_and_in_order() {
        let mut buf = frame(STDOUT, b"hello");
        buf.extend(frame(EXIT, &7i32.to_be_bytes()));
        let half = buf.split_off(6);
        let mut stream = buf;
        assert_eq!(take(&mut stream), Ok(None));
        stream.extend(half);
        assert_eq!(take(&mut stream), Ok(Some((STDOUT, b"hello".to_vec()))));
        assert_eq!(
            take(&mut stream),
            Ok(Some((EXIT, 7i32.to_be_bytes().to_vec())))
        );
        assert!(stream.is_empty());
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut buf = vec![STDIN, 0, 0, 0];
        buf.extend(((MAX_PAYLOAD + 1) as u32).to_be_bytes());
        assert_eq!(take(&mut buf), Err(BadFrame(MAX_PAYLOAD + 1)));
    }
}
