"""The recap_delivery job type: tell a user their recap finished."""
