"""Messages the bot sends a user unasked: a gift received, a payment or refund settled, a
VIP that lapsed (README, "Notifications")."""
