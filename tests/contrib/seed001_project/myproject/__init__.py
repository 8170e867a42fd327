from __future__ import absolute_import, unicode_literals  # 声明绝对路径
# the seed's `from pymysql import install_as_MySQLdb` / `install_as_MySQLdb()` are dropped:
# this copy runs on SQLite, not MySQL
from .multiq import app as multiq_app


__all__ = ('multiq_app',)  # 注册
