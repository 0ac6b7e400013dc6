"""Messages the bot sends a user unasked: a gift received, a payment or refund settled, a
VIP about to lapse or lapsed (README, "Notifications")."""
