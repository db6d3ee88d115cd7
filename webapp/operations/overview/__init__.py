"""The staff overview (/admin/overview/): SumUp connections, token refreshes, campaigns
and backfills at a glance, drawn as server-rendered SVG charts. Each module gathers one
section's figures in a few grouped queries; `charts` draws them; `views` shows each
section only to staff who may view its model."""
