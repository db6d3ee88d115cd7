"""Everything about an artist's SumUp merchant connection."""
