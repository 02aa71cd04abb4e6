"""Who may do what in MongoDB: the platform's roles and users, and the dev stack's credentials.

`provision` creates least-privilege roles and users (one per project, the endpoint, and
the admin the platform sets itself up with); `credentials` keeps the dev stack's
passwords in a private file under `MINING_HOME` and puts them into connection strings.
"""
