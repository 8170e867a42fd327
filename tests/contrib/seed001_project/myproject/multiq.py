import os
from multiq import MultiQ

# 设置环境变量
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'myproject.settings')

# 实例化
app = MultiQ('myproject')  # multiq实例名为`myproject`,如果不设置则默认为工程名

# namespace='MULTIQ'作用是允许你在Django配置文件中对MultiQ进行配置
# 但所有MultiQ配置项必须以MULTIQ开头，防止冲突
app.config_from_object('django.conf:settings', namespace='MULTIQ')

# 自动从Django的已注册app中发现任务
app.autodiscover_tasks()  # 默认从每个应用文件夹中`tasks.py`查找任务. 如果直接传入 列表/元组 则去指定地方

# 一个测试任务
@app.task(bind=True)
def debug_task(self):
    print(f'Request: {self.request!r}')
