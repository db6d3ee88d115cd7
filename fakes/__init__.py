"""Stand-ins for the third parties, over real HTTP on loopback, for local runs, tests and
benchmarks: `fakes.sumup` (SumUp's OAuth and API) and `fakes.brevo` (the email provider's
API, as anymail's Brevo backend calls it). The site never imports them."""
