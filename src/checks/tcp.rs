//! `tcp`: a connection to host:port opens within the timeout.

use std::time::{Duration, Instant};

use super::{Check, Context, Outcome, Status};

pub struct Tcp<'a> {
    pub address: &'a str,
    pub timeout: Duration,
}

impl Check for Tcp<'_> {
    const KIND: &'static str = "tcp";

    fn target(&self) -> String {
        self.address.to_string()
    }

    async fn run(&self, _ctx: &Context) -> Outcome {
        let started = Instant::now();
        match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(self.address)).await {
            Ok(Ok(_)) => {
                let ms = started.elapsed().as_millis() as u64;
                Outcome::new(Status::Ok, format!("{} accepts connections ({ms} ms)", self.address)).with("connect_ms", ms)
            }
            Ok(Err(e)) => Outcome::new(Status::Failing, format!("cannot connect to {}: {e}", self.address)).with("error", e.to_string()),
            Err(_) => Outcome::new(Status::Failing, format!("no connection to {} within {}", self.address, crate::duration::format(self.timeout))).with("error", "timeout"),
        }
    }
}
