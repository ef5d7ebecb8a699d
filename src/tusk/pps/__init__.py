"""PPS: Pachyderm's pipeline system — pipeline specs, datums, jobs and the controller."""
