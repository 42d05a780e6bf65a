"""The collector process: venue WebSocket streams → raw landing, correct books and JetStream messages."""
