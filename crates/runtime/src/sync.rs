//! The channel between the runtime process and the container's init while
//! the container is being created: a SOCK_SEQPACKET socket pair carrying
//! one small JSON message per packet. Each side blocks on the other at the
//! points the start path lists in `container_create`.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// A message on the create channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Runtime → child: carry on with the next step.
    Go,
    /// Intermediate → runtime: I have a new user namespace; write my id maps.
    MapIds,
    /// Intermediate → runtime: the container's init has this host pid.
    InitPid(i32),
    /// Init → runtime: mounts are done; run the prestart/createRuntime hooks.
    RunHooks,
    /// Init → runtime: set up, now waiting for `start`.
    Ready,
    /// Either side: a step failed.
    Error(String),
}

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (runtime end, child end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| RuntimeError::sys("socketpair", "create channel", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

/// The largest message either side sends (the receive buffer's size).
const MAX_MESSAGE: usize = 64 * 1024;

impl Channel {
    /// Sends one message.
    pub fn send(&self, m: &Message) -> Result<()> {
        let mut data = serde_json::to_vec(m)
            .map_err(|e| RuntimeError::Other(format!("encode sync message: {e}")))?;
        if data.len() > MAX_MESSAGE {
            // An error must arrive whole enough to be read: shorten its text
            // (a 100,000-character hostname once made it undecodable).
            let Message::Error(text) = m else {
                return Err(RuntimeError::Other(format!(
                    "sync message of {} bytes is larger than {MAX_MESSAGE}",
                    data.len()
                )));
            };
            let mut keep = MAX_MESSAGE / 2;
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            let short = format!("{}… ({} more bytes cut)", &text[..keep], text.len() - keep);
            data = serde_json::to_vec(&Message::Error(short))
                .map_err(|e| RuntimeError::Other(format!("encode sync message: {e}")))?;
        }
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .map_err(|e| RuntimeError::sys("send", "create channel", e))?;
        Ok(())
    }

    /// Receives one message; `None` when the other side closed.
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    return serde_json::from_slice(&buf[..n])
                        .map(Some)
                        .map_err(|e| RuntimeError::Other(format!("decode sync message: {e}")))
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(RuntimeError::sys("recv", "create channel", e)),
            }
        }
    }

    /// Receives a message and insists that it is `want`; an `Error` from
    /// the other side becomes this side's error.
    pub fn expect(&self, want: &Message) -> Result<()> {
        match self.recv()? {
            Some(m) if &m == want => Ok(()),
            Some(Message::Error(e)) => Err(RuntimeError::Init(e)),
            Some(m) => Err(RuntimeError::Other(format!(
                "create channel: expected {want:?}, got {m:?}"
            ))),
            None => Err(RuntimeError::Init(format!(
                "exited before sending {want:?}"
            ))),
        }
    }

    /// The raw descriptor.
    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_past_the_message_size_arrives_shortened() {
        let (a, b) = pair().unwrap();
        let long = format!("sethostname {}: EINVAL", "h".repeat(100_000));
        a.send(&Message::Error(long)).unwrap();
        match b.recv().unwrap() {
            Some(Message::Error(e)) => {
                assert!(e.starts_with("sethostname hhh"), "{}", &e[..40]);
                assert!(e.ends_with("more bytes cut)"), "{}", &e[e.len() - 40..]);
                assert!(e.len() < MAX_MESSAGE);
            }
            other => panic!("{other:?}"),
        }
    }
}
