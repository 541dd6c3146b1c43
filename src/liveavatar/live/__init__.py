"""Live sessions: one portrait, speech pushed as it arrives, frames out as they are made, and the
transports that carry them (WebSocket, WebRTC). Nothing heavy is imported here."""
